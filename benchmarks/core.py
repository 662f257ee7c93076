"""The ``core`` suite: the pure routing engine alone, in process, on a virtual clock.

What is built (deterministic from the seed): one tenant with S skills and Q queues, each queue
requiring 1-2 uniformly random skills at a minimum level of 1-5, its strategy LONGEST_IDLE
(one in five LEAST_BUSY); N agents, each with 3-7 uniformly random skills at levels 1-10 and a
capacity of 2-4 chats, all ONLINE. With uniform skills many queues have nobody able to serve
them (most of them at small N), so arrivals follow the agents: pick an agent at random weighted
by capacity, then one of the queues it is eligible for. Demand thus lands where supply is and
the load is feasible at every N; the table reports the occupancy actually reached.

Driving it: every command goes through ``Engine.execute``. Every ``OfferMade`` is accepted at
once by the offered agent. First a fill phase (arrivals only) brings conversations in the
system (active plus waiting) up to ``occupancy`` of total capacity; then the steady state
alternates: below the target a conversation arrives (``StartConversation`` into a queue, as
above), otherwise a random active conversation ends (``EndConversation``; no wrap-up). An
arrival is matched at once if an eligible agent has room, else it waits; an end frees room,
and the engine pulls the best waiting conversation for that agent. Due timers are fired after
every step (``Engine.tick``, as the runtime does on ``ArmTimer``), and timed like commands.

Time is virtual (a ``ManualClock``, moved outside the measurement), and it moves at a
realistic pace, so that the engine's timed housekeeping (offer deadlines, forgetting closed
conversations after their retention) sees what a real tenant would: each step moves it by
``handle_seconds / (2 * target)``, which by Little's law makes the mean time a conversation is
active ``handle_seconds`` (5 minutes) at every N. The steady state first runs unmeasured for
``warmup_seconds`` of virtual time (longer than the default retention of closed
conversations); then the garbage is collected and the measured phase runs until ``decisions``
decisions were made. The garbage collector stays on throughout the measured phase, as in a
server: its pauses are in the figures.

Figures (a decision = one conversation matched to an agent = one ``OfferMade``):

- latency: the wall time (``perf_counter_ns``) of the one ``execute`` call that produced the
  decision. The call also did other work (creating the conversation, or closing the one that
  freed the room); that is counted, since it is on the path of the decision. A call that made
  k decisions contributes k samples of its time / k. p50 and p99 are over those samples.
- ``decisions_per_s`` = decisions / total time of the calls that produced decisions. Calls that
  decided nothing (accepts, ends with nothing waiting, arrivals that had to wait) are outside
  this figure; ``cycle_per_s`` covers them: conversations completed in the measured phase
  (arrive, accept, end) per second of *all* engine time in that phase. ``mean_us`` is the
  mean decision cost (1e6 / ``decisions_per_s``); its growth over N is the scaling check.
- memory, as the growth of the engine's state (``sys.getsizeof`` summed over every object
  reachable from the engine, each once; classes, functions and modules excluded), with one
  conversation already sent through every queue (and gone), so the per-queue indexes exist
  as in a tenant in use:
  ``bytes_per_agent`` is the growth from configuring the N agents and signing them in,
  divided by N (on the engine then measured for speed). ``bytes_per_waiting_conversation`` is
  the growth from W arrivals into a second engine with the same queues and no agent, so that
  all W wait, divided by W. Skill names are strings the tenant already holds, so
  they are not counted again; ids are. Lazy index entries per agent can grow up to about
  twice what is measured here between compactions.
- ``bytes_kept_per_ended_conversation`` (no target; a leak detector): after the timed phase,
  the growth of the main engine's state over a further steady stretch, divided by the
  conversations ended in it. Conversations in the system stay put and the warm-up outlasts
  the retention of closed ones, so this is what finished work leaves behind for good (about
  zero for an engine bounded by its live state; noisy within a few hundred bytes).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import random
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.routing import Engine, ManualClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing import model as m

TENANT = "bench"
CHANNEL = "webchat"
STEP_SECONDS = 0.001
"""Virtual time between two set-up commands (configuration, memory figures)."""
LEAST_BUSY_SHARE = 0.2
AGENT_SKILLS = (3, 7)
AGENT_CAPACITY = (2, 4)
QUEUE_REQUIREMENTS = (1, 2)
QUEUE_MIN_LEVEL = (1, 5)

TARGET_SIZE = (10_000, 200, 500)
"""(agents, skills, queues) of the throughput and p99 targets."""
TARGET_DECISIONS_PER_S = 50_000.0
TARGET_P99_US = 100.0
TARGET_GROWTH = 2.0
TARGET_BYTES_PER_AGENT = 4096.0
TARGET_BYTES_PER_WAITING = 2048.0

Progress = Callable[[str], None]
SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)
"""Objects ``state_bytes`` does not count or follow: they belong to the program, not a state."""


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """One row of the suite: the tenant's size and how long to measure."""

    agents: int
    skills: int = 200
    queues: int = 500
    decisions: int = 100_000
    """Decisions measured in the steady state."""
    handle_seconds: float = 300.0
    """Mean virtual time a conversation is active; sets how fast the virtual clock moves."""
    warmup_seconds: float = 360.0
    """Virtual time the steady state runs, unmeasured, after the fill."""
    waiting: int = 20_000
    """Conversations enqueued for the waiting-conversation memory figure."""
    occupancy: float = 0.9
    """Conversations kept in the system (active + waiting), as a share of total capacity."""
    seed: int = 1


def smoke(config: CoreConfig) -> CoreConfig:
    """The same row with small counts (``--quick``): a smoke run, not a measurement."""
    return dataclasses.replace(config, decisions=2_000, warmup_seconds=10.0, waiting=500)


@dataclass(frozen=True, slots=True)
class CoreResult:
    """One row of the report; the first eight fields are the suite's JSON contract."""

    agents: int
    skills: int
    queues: int
    decisions_per_s: float
    p50_us: float
    p99_us: float
    bytes_per_agent: float
    bytes_per_waiting_conversation: float
    cycle_per_s: float
    mean_us: float
    decisions: int
    occupancy: float
    """Mean share of total capacity held by active conversations in the measured phase."""
    waiting: float
    """Mean number of conversations waiting in the measured phase."""
    bytes_kept_per_ended_conversation: float
    """State growth per conversation ended during a further steady stretch, where the number
    of conversations in the system stays put: what the engine keeps of finished work."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A target from the benchmark issue and whether this run met it."""

    name: str
    value: float
    limit: float
    ok: bool


# --- workload ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentSpec:
    skills: tuple[tuple[str, int], ...]
    capacity: int
    queues: tuple[str, ...]
    """Queues this agent is eligible for (computed here, independently of the engine)."""


@dataclass(frozen=True, slots=True)
class Workload:
    skills: tuple[str, ...]
    queues: tuple[m.QueueSettings, ...]
    agents: tuple[AgentSpec, ...]
    slots: tuple[int, ...]
    """Agent indexes, each repeated once per unit of capacity, of agents serving some queue:
    a uniform pick from it is a capacity-weighted pick of an agent."""

    def profile(self, index: int) -> m.AgentProfile:
        """A freshly allocated profile for agent ``index``."""
        spec = self.agents[index]
        return m.AgentProfile(
            agent_id=f"a{index}", skills=dict(spec.skills), capacity=float(spec.capacity)
        )

    def pick_queue(self, rng: random.Random) -> str:
        """A queue for an arrival: a capacity-weighted agent's, so someone can serve it."""
        return rng.choice(self.agents[rng.choice(self.slots)].queues)


def build_workload(agents: int, skills: int, queues: int, rng: random.Random) -> Workload:
    """Random skills, queues and agents as described in the module docstring."""
    names = tuple(f"s{i}" for i in range(skills))
    settings: list[m.QueueSettings] = []
    for q in range(queues):
        count = min(skills, rng.randint(*QUEUE_REQUIREMENTS))
        required = tuple(
            m.SkillRequirement(skill, rng.randint(*QUEUE_MIN_LEVEL))
            for skill in rng.sample(names, count)
        )
        strategy = (
            m.Strategy.LEAST_BUSY if rng.random() < LEAST_BUSY_SHARE else m.Strategy.LONGEST_IDLE
        )
        settings.append(m.QueueSettings(queue_id=f"q{q}", requirements=required, strategy=strategy))
    drawn: list[tuple[tuple[str, int], ...]] = []
    holders: dict[str, list[int]] = {name: [] for name in names}
    for a in range(agents):
        count = min(skills, rng.randint(*AGENT_SKILLS))
        owned = tuple((skill, rng.randint(1, 10)) for skill in rng.sample(names, count))
        drawn.append(owned)
        for skill, _ in owned:
            holders[skill].append(a)
    serves: list[list[str]] = [[] for _ in range(agents)]
    for queue in settings:
        rarest = min(queue.requirements, key=lambda r: len(holders[r.skill]))
        for a in holders[rarest.skill]:
            levels = dict(drawn[a])
            if all(levels.get(r.skill, 0) >= r.min_level for r in queue.requirements):
                serves[a].append(queue.queue_id)
    specs = tuple(
        AgentSpec(skills=owned, capacity=rng.randint(*AGENT_CAPACITY), queues=tuple(served))
        for owned, served in zip(drawn, serves, strict=True)
    )
    slots = tuple(i for i, spec in enumerate(specs) if spec.queues for _ in range(spec.capacity))
    if not slots:
        raise ValueError("no agent is eligible for any queue: add agents or skills")
    return Workload(skills=names, queues=tuple(settings), agents=specs, slots=slots)


def new_engine(workload: Workload) -> tuple[Engine, ManualClock]:
    """An engine holding the bench tenant with its skills and queues, and no agents."""
    clock = ManualClock()
    engine = Engine(clock)
    engine.execute(
        c.ConfigureTenant(tenant=TENANT, settings=m.TenantSettings(misses_before_away=0))
    )
    for skill in workload.skills:
        engine.execute(c.DefineSkill(tenant=TENANT, skill=skill))
    for queue in workload.queues:
        engine.execute(c.ConfigureQueue(tenant=TENANT, settings=queue))
    return engine, clock


def add_agents(engine: Engine, clock: ManualClock, workload: Workload) -> None:
    """Configure every agent of the workload and sign it in."""
    for i in range(len(workload.agents)):
        profile = workload.profile(i)
        engine.execute(c.ConfigureAgent(tenant=TENANT, profile=profile))
        engine.execute(
            c.SetAgentStatus(tenant=TENANT, agent_id=profile.agent_id, status=m.AgentStatus.ONLINE)
        )
        clock.advance(STEP_SECONDS)


# --- the steady state -------------------------------------------------------------------------


class Driver:
    """Feeds commands to one engine, accepts every offer, and keeps the books.

    ``active`` holds (conversation, agent) pairs; a random one is removed by swapping it with
    the last, so ending a random conversation costs the harness O(1).
    """

    def __init__(
        self,
        engine: Engine,
        clock: ManualClock,
        workload: Workload,
        seed: int,
        step_seconds: float,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.step_seconds = step_seconds
        self.workload = workload
        self.rng = random.Random(seed)
        self.active: list[tuple[str, str]] = []
        self.in_system = 0
        self.started = 0
        self.recording = False
        self.samples: list[int] = []
        self.decision_ns = 0
        self.engine_ns = 0
        self.ended = 0
        self.steps = 0
        self.active_sum = 0
        self.waiting_sum = 0

    def reset_books(self) -> None:
        self.samples = []
        self.decision_ns = self.engine_ns = self.ended = 0
        self.steps = self.active_sum = self.waiting_sum = 0

    def execute(self, command: c.Command) -> list[ev.Event]:
        """Run one command, timed; accept whatever it offered."""
        started = time.perf_counter_ns()
        result = self.engine.execute(command)
        elapsed = time.perf_counter_ns() - started
        self.book(elapsed, result.events)
        return result.events

    def book(self, elapsed: int, events: list[ev.Event]) -> None:
        """Account one engine call of ``elapsed`` ns, then accept the offers it made."""
        offers = [e for e in events if isinstance(e, ev.OfferMade)]
        if self.recording:
            self.engine_ns += elapsed
            if offers:
                self.decision_ns += elapsed
                self.samples.extend([elapsed // len(offers)] * len(offers))
        for offer in offers:
            self.accept(offer)

    def accept(self, offer: ev.OfferMade) -> None:
        agent_id = offer.agent_ids[0]
        events = self.execute(
            c.AcceptOffer(tenant=TENANT, offer_id=offer.offer_id, agent_id=agent_id)
        )
        for event in events:
            if isinstance(event, ev.OfferAccepted):
                self.active.append((event.conversation_id, event.agent_id))

    def arrive(self) -> None:
        self.started += 1
        n = self.started
        self.in_system += 1
        self.execute(
            c.StartConversation(
                tenant=TENANT,
                conversation_id=f"c{n}",
                channel=CHANNEL,
                customer_id=f"k{n}",
                queue_id=self.workload.pick_queue(self.rng),
            )
        )

    def end(self) -> None:
        active = self.active
        i = self.rng.randrange(len(active))
        active[i], active[-1] = active[-1], active[i]
        conversation_id, agent_id = active.pop()
        self.in_system -= 1
        self.ended += 1
        self.execute(
            c.EndConversation(tenant=TENANT, agent_id=agent_id, conversation_id=conversation_id)
        )

    def tick(self) -> None:
        """Fire due timers, as the runtime does on ``ArmTimer``; timed like any engine call."""
        deadline = self.engine.next_deadline()
        if deadline is None or deadline > self.clock.now():
            return
        started = time.perf_counter_ns()
        result = self.engine.tick()
        elapsed = time.perf_counter_ns() - started
        self.book(elapsed, result.events)

    def fill(self, target: int) -> None:
        """Arrivals only, until ``target`` conversations are in the system."""
        while self.in_system < target:
            self.clock.advance(self.step_seconds)
            self.arrive()
            self.tick()

    def step(self, target: int) -> None:
        """Move the clock on; arrive while below ``target`` conversations in the system, else
        end one; then fire whatever timers fell due."""
        self.clock.advance(self.step_seconds)
        if self.in_system < target or not self.active:
            self.arrive()
        else:
            self.end()
        self.tick()
        if self.recording:
            self.steps += 1
            self.active_sum += len(self.active)
            self.waiting_sum += self.in_system - len(self.active)


def steady(driver: Driver, target: int, steps: int) -> None:
    for _ in range(steps):
        driver.step(target)


def percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- memory -----------------------------------------------------------------------------------


def prime_indexes(engine: Engine, clock: ManualClock, workload: Workload) -> None:
    """Send one conversation into every queue before any agent is signed in, then let the
    customer leave: the engine's per-queue indexes then exist, as in a tenant already in use."""
    for queue in workload.queues:
        conversation_id = f"prime-{queue.queue_id}"
        engine.execute(
            c.StartConversation(
                tenant=TENANT,
                conversation_id=conversation_id,
                channel=CHANNEL,
                customer_id="primer",
                queue_id=queue.queue_id,
            )
        )
        engine.execute(c.CustomerLeft(tenant=TENANT, conversation_id=conversation_id))
        clock.advance(STEP_SECONDS)


def state_bytes(root: object) -> int:
    """``sys.getsizeof`` summed over every object reachable from ``root`` (each once), not
    following into classes, modules or code: the size of an engine's state."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def state_growth(engine: Engine, action: Callable[[], None]) -> int:
    """How much larger the engine's state is after ``action``."""
    before = state_bytes(engine)
    action()
    return state_bytes(engine) - before


def waiting_memory(workload: Workload, waiting: int, seed: int) -> float:
    """Bytes per waiting conversation: ``waiting`` arrivals into an engine with no agent, so
    that they all wait."""
    engine, clock = new_engine(workload)
    prime_indexes(engine, clock, workload)
    rng = random.Random(seed)

    def enqueue() -> None:
        for n in range(waiting):
            engine.execute(
                c.StartConversation(
                    tenant=TENANT,
                    conversation_id=f"w{n}",
                    channel=CHANNEL,
                    customer_id=f"k{n}",
                    queue_id=workload.pick_queue(rng),
                )
            )
            clock.advance(STEP_SECONDS)

    return state_growth(engine, enqueue) / waiting


# --- the suite --------------------------------------------------------------------------------


def run_core(config: CoreConfig, progress: Progress | None = None) -> CoreResult:
    """Measure one tenant size: memory first, then the steady state (see the docstring)."""
    say = progress or (lambda _: None)
    if config.agents <= 0 or config.decisions <= 0 or config.waiting <= 0:
        raise ValueError("agents, decisions and waiting must be positive")
    rng = random.Random(config.seed)
    workload = build_workload(config.agents, config.skills, config.queues, rng)
    say(f"{config.agents:,} agents: memory of {config.waiting:,} waiting conversations")
    per_waiting = waiting_memory(workload, config.waiting, config.seed + 1)
    gc.collect()

    say(f"{config.agents:,} agents: building")
    engine, clock = new_engine(workload)
    prime_indexes(engine, clock, workload)
    grown = state_growth(engine, lambda: add_agents(engine, clock, workload))
    per_agent = grown / config.agents
    capacity = sum(workload.agents[i].capacity for i in set(workload.slots))
    target = max(1, int(config.occupancy * capacity))
    step_seconds = config.handle_seconds / (2 * target)
    driver = Driver(engine, clock, workload, config.seed + 2, step_seconds)
    say(f"{config.agents:,} agents: filling to {target:,} conversations")
    driver.fill(target)
    say(f"{config.agents:,} agents: warming up for {config.warmup_seconds:g} virtual seconds")
    warm_until = clock.now() + config.warmup_seconds
    while clock.now() < warm_until:
        driver.step(target)
    gc.collect()

    say(f"{config.agents:,} agents: measuring {config.decisions:,} decisions")
    driver.reset_books()
    driver.recording = True
    budget = 50 * config.decisions + 10_000
    while len(driver.samples) < config.decisions:
        if driver.steps >= budget:
            raise RuntimeError(f"only {len(driver.samples)} decisions in {budget:,} steps")
        driver.step(target)
    driver.recording = False

    say(f"{config.agents:,} agents: memory kept by ended conversations")
    ended = driver.ended
    kept = state_growth(engine, lambda: steady(driver, target, config.decisions // 10 + 100))
    kept_per_end = kept / max(1, driver.ended - ended)

    samples = sorted(driver.samples)
    decisions = len(samples)
    seconds = driver.decision_ns / 1e9
    return CoreResult(
        agents=config.agents,
        skills=config.skills,
        queues=config.queues,
        decisions_per_s=round(decisions / seconds, 1),
        p50_us=round(percentile(samples, 0.50) / 1e3, 2),
        p99_us=round(percentile(samples, 0.99) / 1e3, 2),
        bytes_per_agent=round(per_agent, 1),
        bytes_per_waiting_conversation=round(per_waiting, 1),
        cycle_per_s=round(driver.ended / (driver.engine_ns / 1e9), 1),
        mean_us=round(driver.decision_ns / decisions / 1e3, 2),
        decisions=decisions,
        occupancy=round(driver.active_sum / driver.steps / capacity, 3),
        waiting=round(driver.waiting_sum / driver.steps, 1),
        bytes_kept_per_ended_conversation=round(kept_per_end, 1),
    )


def check_targets(results: Sequence[CoreResult]) -> list[Verdict]:
    """The issue's targets that these results can speak to (throughput and p99 need a row at
    10,000 agents, 200 skills, 500 queues; growth needs two agent counts)."""
    verdicts: list[Verdict] = []
    for r in results:
        if (r.agents, r.skills, r.queues) == TARGET_SIZE:
            verdicts.append(
                Verdict(
                    "decisions/s at 10,000 agents (at least)",
                    r.decisions_per_s,
                    TARGET_DECISIONS_PER_S,
                    r.decisions_per_s >= TARGET_DECISIONS_PER_S,
                )
            )
            verdicts.append(
                Verdict(
                    "p99 µs at 10,000 agents", r.p99_us, TARGET_P99_US, r.p99_us <= TARGET_P99_US
                )
            )
    if len({r.agents for r in results}) > 1:
        smallest = min(results, key=lambda r: r.agents)
        largest = max(results, key=lambda r: r.agents)
        growth = largest.mean_us / smallest.mean_us
        verdicts.append(
            Verdict(
                f"cost growth {smallest.agents:,} -> {largest.agents:,} agents (×)",
                round(growth, 2),
                TARGET_GROWTH,
                growth <= TARGET_GROWTH,
            )
        )
    for r in results:
        verdicts.append(
            Verdict(
                f"bytes per agent at {r.agents:,}",
                r.bytes_per_agent,
                TARGET_BYTES_PER_AGENT,
                r.bytes_per_agent <= TARGET_BYTES_PER_AGENT,
            )
        )
        verdicts.append(
            Verdict(
                f"bytes per waiting conversation at {r.agents:,}",
                r.bytes_per_waiting_conversation,
                TARGET_BYTES_PER_WAITING,
                r.bytes_per_waiting_conversation <= TARGET_BYTES_PER_WAITING,
            )
        )
    return verdicts
