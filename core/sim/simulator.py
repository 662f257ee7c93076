"""Synthetic traffic through the real routing engine on a virtual clock.

A discrete-event loop: the simulator's own actions (arrivals, accepts after a delay, ends after
the handle time, customers giving up) sit in a heap merged with the engine's next timer; the
clock jumps to whichever is earliest, that one runs, and the resulting events are read back.
Everything random comes from streams seeded by ``SimulationConfig.seed``: one seed, one result.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

from core.routing import Engine, ManualClock, RoutingError
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m
from core.sim.erlang import ErlangC

TENANT = "sim"
CHANNEL = "webchat"
"""Costs one capacity unit under the default tenant settings."""
START = 1_767_225_600.0
"""Virtual time zero: 2026-01-01T00:00Z."""
_WAIT_EPSILON = 1e-9
"""A wait shorter than this is float noise, not waiting."""
_MAX_TICKS_AT_ONCE = 10_000
"""More ticks than this without the clock moving means an engine timer that never clears."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationConfig:
    """One simulated run. Times are in seconds of virtual time."""

    agents: int
    arrival_rate: float
    """Poisson arrivals per second, spread uniformly over the queues."""
    mean_handle_time: float
    """Exponential; the agent ends the conversation this long after accepting it."""
    duration: float
    """Arrivals happen in ``[0, duration)``; the run stops at ``duration``."""
    skills: int = 1
    """Skills ``s0..s{K-1}``, one queue per skill requiring it at level 1."""
    skills_per_agent: int = 1
    """Agent ``i`` has ``s{i mod K}`` and ``M - 1`` more at random, levels 1-10 at random."""
    capacity: int = 1
    """Conversations an agent holds at once."""
    patience: float | None = None
    """Mean of the customers' exponential patience; None means nobody abandons."""
    accept_delay: float | None = None
    """Seconds between an offer and its acceptance; None accepts at once."""
    sl_threshold: float = 20.0
    """Service level counts answers within this wait."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise ValueError("agents must be >= 1")
        if self.arrival_rate <= 0 or self.mean_handle_time <= 0 or self.duration <= 0:
            raise ValueError("arrival rate, mean handle time and duration must be > 0")
        if not 1 <= self.skills_per_agent <= self.skills:
            raise ValueError("skills per agent must be between 1 and the number of skills")
        if self.capacity < 1:
            raise ValueError("capacity must be >= 1")
        if self.patience is not None and self.patience <= 0:
            raise ValueError("patience must be > 0")
        if self.accept_delay is not None and self.accept_delay < 0:
            raise ValueError("accept delay must be >= 0")
        if self.sl_threshold < 0:
            raise ValueError("service-level threshold must be >= 0")

    @property
    def erlang_c(self) -> ErlangC | None:
        """The M/M/c prediction, when this run is one: a single skill, capacity 1, no
        abandonment and no accept delay. None otherwise."""
        if self.skills != 1 or self.capacity != 1 or self.patience is not None:
            return None
        if self.accept_delay:
            return None
        return ErlangC(self.agents, self.arrival_rate, self.mean_handle_time, self.sl_threshold)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationReport:
    """What a run measured. Wait is from enqueue to the accepted offer; the ratios over
    answered conversations are None when nobody was answered."""

    offered: int
    """Conversations that arrived."""
    answered: int
    """Accepted by an agent before the end."""
    abandoned: int
    waiting: int
    """Still queued or offered at the end: ``offered = answered + abandoned + waiting``."""
    p_wait: float | None
    """Fraction of answered conversations that waited at all."""
    asa_seconds: float | None
    """Mean wait of answered conversations."""
    service_level: float | None
    """Fraction of answered conversations that waited at most ``sl_threshold``."""
    occupancy: float
    """Capacity in use, integrated over time, over ``agents * capacity * duration``."""
    max_queue_length: int
    """Most conversations waiting at once (measured after each instant settles)."""
    engine_events: int
    duration: float
    wall_seconds: float
    erlang_c: ErlangC | None = None
    """The M/M/c prediction to compare with, when the run is one."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping; infinities become None."""
        data: dict[str, object] = {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "waiting": self.waiting,
            "p_wait": self.p_wait,
            "asa_seconds": self.asa_seconds,
            "service_level": self.service_level,
            "occupancy": self.occupancy,
            "max_queue_length": self.max_queue_length,
            "engine_events": self.engine_events,
            "duration": self.duration,
            "wall_seconds": self.wall_seconds,
            "erlang_c": None,
        }
        if self.erlang_c is not None:
            predicted = self.erlang_c
            data["erlang_c"] = {
                "p_wait": predicted.p_wait,
                "asa_seconds": _finite(predicted.asa),
                "service_level": predicted.service_level,
                "occupancy": predicted.occupancy,
            }
        return data


def simulate(config: SimulationConfig) -> SimulationReport:
    """Run ``config`` through a fresh engine and measure it. Engine errors propagate, except an
    accept that lost its offer to an abandonment (that race is part of the traffic)."""
    started = time.perf_counter()
    run = _Run(config)
    run.setup()
    run.loop()
    return run.report(wall_seconds=time.perf_counter() - started)


class _Action(IntEnum):
    ARRIVE = 0
    ACCEPT = 1
    END = 2
    GIVE_UP = 3


class _Run:
    """The mutable state of one run; ``simulate`` is its only user."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.clock = ManualClock(start=START)
        self.engine = Engine(self.clock)
        self.end = START + config.duration
        seed = config.seed
        # Separate streams: the same seed gives the same arrivals and staff whatever the patience,
        # accept delay or handle times.
        self.arrival_rng = random.Random(f"{seed}/arrivals")
        self.handle_rng = random.Random(f"{seed}/handling")
        self.patience_rng = random.Random(f"{seed}/patience")
        self.staffing_rng = random.Random(f"{seed}/staffing")
        self.heap: list[tuple[float, int, _Action, str, str]] = []
        self.seq = 0
        self.pending: deque[ev.Event] = deque()
        self.waiting: dict[str, float] = {}
        """Conversation -> enqueue time, while queued or offered."""
        self.held: set[str] = set()
        """Conversations agents hold right now (accepted, not yet closed)."""
        self.busy_area = 0.0
        self.last_at = START
        self.offered = 0
        self.answered = 0
        self.abandoned = 0
        self.waited = 0
        self.within_threshold = 0
        self.total_wait = 0.0
        self.max_queue = 0
        self.engine_events = 0

    # --- setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.config
        # Offers outlive the accept delay, so none expires and every one is answered.
        offer_timeout = 30.0 + (cfg.accept_delay or 0.0)
        self.execute(
            c.ConfigureTenant(tenant=TENANT, settings=m.TenantSettings(misses_before_away=0))
        )
        for k in range(cfg.skills):
            self.execute(c.DefineSkill(tenant=TENANT, skill=f"s{k}"))
            queue = m.QueueSettings(
                queue_id=f"q{k}",
                requirements=(m.SkillRequirement(f"s{k}", 1),),
                offer_timeout=offer_timeout,
            )
            self.execute(c.ConfigureQueue(tenant=TENANT, settings=queue))
        for i in range(cfg.agents):
            agent_id = f"a{i}"
            self.execute(c.ConfigureAgent(tenant=TENANT, profile=self.profile(i)))
            self.execute(
                c.SetAgentStatus(tenant=TENANT, agent_id=agent_id, status=m.AgentStatus.ONLINE)
            )
        self.drain()
        self.schedule(START + self.arrival_rng.expovariate(cfg.arrival_rate), _Action.ARRIVE)

    def profile(self, index: int) -> m.AgentProfile:
        cfg = self.config
        first = index % cfg.skills
        others = [k for k in range(cfg.skills) if k != first]
        chosen = [first, *self.staffing_rng.sample(others, cfg.skills_per_agent - 1)]
        skills = {
            f"s{k}": self.staffing_rng.randint(m.MIN_SKILL_LEVEL, m.MAX_SKILL_LEVEL) for k in chosen
        }
        return m.AgentProfile(agent_id=f"a{index}", skills=skills, capacity=float(cfg.capacity))

    # --- the loop -----------------------------------------------------------------------------

    def loop(self) -> None:
        stuck = 0
        while True:
            own = self.heap[0][0] if self.heap else None
            timer = self.engine.next_deadline()
            if own is None and timer is None:
                break
            if own is None or (timer is not None and timer <= own):
                assert timer is not None
                if timer > self.end:
                    break
                stuck = stuck + 1 if timer <= self.clock.now() else 0
                if stuck > _MAX_TICKS_AT_ONCE:
                    raise RuntimeError(f"engine timer at {timer} stays due after tick()")
                self.advance(timer)
                self.absorb(self.engine.tick().events)
            else:
                if own > self.end:
                    break
                at, _, action, first, second = heapq.heappop(self.heap)
                self.advance(at)
                self.act(action, first, second)
            self.drain()
            self.max_queue = max(self.max_queue, len(self.waiting))
        self.advance(self.end)

    def advance(self, at: float) -> None:
        """Move the clock (never back) and integrate the load up to ``at``."""
        now = self.clock.now()
        if at > now:
            self.busy_area += len(self.held) * (at - self.last_at)
            self.last_at = at
            self.clock.set(at)

    def act(self, action: _Action, first: str, second: str) -> None:
        now = self.clock.now()
        if action is _Action.ARRIVE:
            self.arrive(now)
        elif action is _Action.ACCEPT:
            # The customer may have left, and the offer with them, before the agent accepted.
            with contextlib.suppress(RoutingError):
                self.execute(c.AcceptOffer(tenant=TENANT, offer_id=first, agent_id=second))
        elif action is _Action.END:
            self.execute(c.EndConversation(tenant=TENANT, agent_id=first, conversation_id=second))
        elif first in self.waiting:  # GIVE_UP, while still waiting
            self.execute(c.CustomerLeft(tenant=TENANT, conversation_id=first))

    def arrive(self, now: float) -> None:
        cfg = self.config
        self.offered += 1
        conversation_id = f"c{self.offered}"
        queue_id = f"q{self.arrival_rng.randrange(cfg.skills)}" if cfg.skills > 1 else "q0"
        nxt = now + self.arrival_rng.expovariate(cfg.arrival_rate)
        if nxt < self.end:
            self.schedule(nxt, _Action.ARRIVE)
        if cfg.patience is not None:
            self.schedule(
                now + self.patience_rng.expovariate(1.0 / cfg.patience),
                _Action.GIVE_UP,
                conversation_id,
            )
        self.execute(
            c.StartConversation(
                tenant=TENANT,
                conversation_id=conversation_id,
                channel=CHANNEL,
                customer_id=f"cust{self.offered}",
                queue_id=queue_id,
            )
        )

    # --- events -------------------------------------------------------------------------------

    def execute(self, command: c.Command) -> None:
        self.absorb(self.engine.execute(command).events)

    def absorb(self, events: list[ev.Event]) -> None:
        self.engine_events += len(events)
        self.pending.extend(events)

    def drain(self) -> None:
        """React to every pending event, and to the events those reactions produce."""
        while self.pending:
            self.react(self.pending.popleft())

    def react(self, event: ev.Event) -> None:
        now = self.clock.now()
        if isinstance(event, ev.ConversationQueued):
            self.waiting.setdefault(event.conversation_id, event.enqueued_at)
        elif isinstance(event, ev.OfferMade):
            agent_id = event.agent_ids[0]
            if self.config.accept_delay:
                self.schedule(
                    now + self.config.accept_delay, _Action.ACCEPT, event.offer_id, agent_id
                )
            else:
                self.execute(
                    c.AcceptOffer(tenant=TENANT, offer_id=event.offer_id, agent_id=agent_id)
                )
        elif isinstance(event, ev.OfferAccepted):
            self.answer(event.conversation_id, event.agent_id, now)
        elif isinstance(event, ev.ConversationAbandoned):
            if self.waiting.pop(event.conversation_id, None) is not None:
                self.abandoned += 1
        elif isinstance(event, ev.ConversationEnded):
            if self.waiting.pop(event.conversation_id, None) is not None:
                self.abandoned += 1  # closed while waiting: the customer left
            elif event.wrap_up_until is None:
                self.release(event.conversation_id)
        elif isinstance(event, ev.WrapUpFinished):
            self.release(event.conversation_id)

    def answer(self, conversation_id: str, agent_id: str, now: float) -> None:
        enqueued_at = self.waiting.pop(conversation_id, None)
        if enqueued_at is None:
            return
        wait = now - enqueued_at
        self.answered += 1
        self.total_wait += wait
        self.waited += wait > _WAIT_EPSILON
        self.within_threshold += wait <= self.config.sl_threshold + _WAIT_EPSILON
        self.held.add(conversation_id)
        handle = self.handle_rng.expovariate(1.0 / self.config.mean_handle_time)
        self.schedule(now + handle, _Action.END, agent_id, conversation_id)

    def release(self, conversation_id: str) -> None:
        self.held.discard(conversation_id)

    def schedule(self, at: float, action: _Action, first: str = "", second: str = "") -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, action, first, second))

    # --- the result ---------------------------------------------------------------------------

    def report(self, *, wall_seconds: float) -> SimulationReport:
        cfg = self.config
        answered = self.answered
        return SimulationReport(
            offered=self.offered,
            answered=answered,
            abandoned=self.abandoned,
            waiting=len(self.waiting),
            p_wait=self.waited / answered if answered else None,
            asa_seconds=self.total_wait / answered if answered else None,
            service_level=self.within_threshold / answered if answered else None,
            occupancy=self.busy_area / (cfg.agents * cfg.capacity * cfg.duration),
            max_queue_length=self.max_queue,
            engine_events=self.engine_events,
            duration=cfg.duration,
            wall_seconds=wall_seconds,
            erlang_c=cfg.erlang_c,
        )


def _finite(value: float) -> float | None:
    return value if value != float("inf") else None
