"""Queueing and routing: enqueue, position, offer to the best agents, pull, relaxation."""

from __future__ import annotations

from collections.abc import Iterable

from core.routing import events as ev
from core.routing.explain import MAX_CANDIDATES, Candidate, Decision
from core.routing.hours import HoursStatus, status_at
from core.routing.model import (
    CloseReason,
    QueueReason,
    Strategy,
    SystemMessage,
)
from core.routing.pools import GroupKey
from core.routing.router_parts.base import (
    RouterBase,
    S,
)
from core.routing.router_parts.plans import (
    _squash,
    _steps,
    relaxed_key,
)
from core.routing.state import (
    UNIT,
    Agent,
    Conversation,
    QueueRuntime,
)
from core.routing.timers import TimerKind


def _wanting(key: GroupKey, wanted: frozenset[tuple[str, int]]) -> GroupKey:
    """``key`` also requiring ``wanted`` (the higher level of a skill named twice)."""
    levels = dict(key.requirements)
    for skill, level in wanted:
        levels[skill] = max(levels.get(skill, 0), level)
    return GroupKey(frozenset(levels.items()), key.agents, key.departments)


class QueueingMixin(RouterBase):
    """Queueing and routing: enqueue, position, offer to the best agents, pull, relaxation."""

    def _enqueue(
        self,
        conv: Conversation,
        queue_id: str,
        reason: QueueReason,
        *,
        priority: int | None = None,
        plan: tuple[GroupKey, ...] | None = None,
        exclude: tuple[str, ...] = (),
        route: bool = True,
        wanted: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        """Put the conversation in a queue along its plan, minding business hours, and route it.
        ``wanted`` (skill, minimum level) are added to the first step and to every later one
        that names skills or people (a bot's hand-off): relaxing to any agent stays so."""
        queue = self.queues[queue_id]
        s = queue.settings
        now = self.clock.now()
        hours = status_at(s.hours, now)
        if route and hours is HoursStatus.CLOSED and not s.route_out_of_hours:
            self._say(conv, SystemMessage.OUT_OF_HOURS)
            self._invite_message(conv)
            return
        if route and hours is HoursStatus.CLOSED:
            self._say(conv, SystemMessage.OUT_OF_HOURS)
        if plan is None:
            plan, offsets = self._plan(conv, queue, now)
        else:
            offsets = (0.0,) * len(plan)
        if wanted:
            plan = tuple(
                key if i and key == GroupKey() else _wanting(key, wanted)
                for i, key in enumerate(plan)
            )
        enqueued_at = now
        if reason is QueueReason.OVERFLOW and conv.enqueued_at is not None:
            enqueued_at = conv.enqueued_at  # keeps its age, so it does not lose its place
        held = route and hours is HoursStatus.BREAK
        self._emit(
            ev.ConversationQueued(
                tenant=self.tenant,
                at=now,
                conversation_id=conv.conversation_id,
                queue_id=queue_id,
                reason=reason,
                priority=conv.priority if priority is None else priority,
                enqueued_at=enqueued_at,
                plan=plan,
                offsets=offsets,
                max_wait_at=now + s.max_wait if s.max_wait is not None else None,
                held=held,
                exclude=exclude,
                previous_owner=conv.owner,
            )
        )
        if held:
            self._say(conv, SystemMessage.BREAK_TIME)
        elif route and not self._route(conv):
            self._say_waiting(conv)

    def _plan(
        self, conv: Conversation, queue: QueueRuntime, now: float
    ) -> tuple[tuple[GroupKey, ...], tuple[float, ...]]:
        """The queue's steps, preceded by the customer's last agent when the queue is sticky
        and they served the customer within its window (and still meet its skills)."""
        s = queue.settings
        served = self.last_served.get(conv.customer_id) if s.sticky_window else None
        if served is None or now - served[1] > (s.sticky_window or 0.0):
            return queue.plan, queue.offsets
        agent = self.agents.get(served[0])
        base = queue.plan[0]
        if agent is None or not base.admits(agent.profile):
            return queue.plan, queue.offsets
        sticky = GroupKey(base.requirements, frozenset({agent.agent_id}), None)
        timeout = s.sticky_timeout
        return _squash([(0.0, sticky)] + [(max(t, timeout), k) for t, k in _steps(queue)])

    def _say_waiting(self, conv: Conversation) -> None:
        position, wait = self.position(conv)
        self._say(
            conv,
            SystemMessage.WAITING,
            position=position,
            wait_minutes=max(1, round(wait / 60)),
        )

    def position(self, conv: Conversation) -> tuple[int, float]:
        """(1-based place in line, estimated wait in seconds). The line is the conversations
        waiting for the same agents; held conversations queue behind the routable ones."""
        queue = self.queues[conv.queue_id] if conv.queue_id else None
        if queue is None or conv.state is not S.QUEUED:
            return 0, 0.0
        self._flush_listings()
        group = self.groups[conv.group_key]
        if conv.held:
            position = list(queue.held).index(conv.conversation_id) + 1 + queue.waiting
        else:
            position = group.ahead_of(conv) + 1
        servers = group.online
        return position, position * queue.avg_handle_seconds / max(1, servers)

    def _invite_message(self, conv: Conversation) -> None:
        self._say(conv, SystemMessage.LEAVE_MESSAGE)
        self._close_waiting(conv, CloseReason.LEFT_MESSAGE, None)

    def _route(self, conv: Conversation) -> bool:
        """Offer a waiting conversation to the best eligible agent(s); False if none is free."""
        if conv.state is not S.QUEUED or conv.held:
            return False
        queue = self._queue_of(conv)
        if conv.group_key.requirements and self._stranded(queue):
            self._emit(
                ev.ConversationStepped(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=conv.conversation_id,
                    step=conv.step,
                    relaxed=True,
                )
            )
        strategy = queue.settings.strategy
        winners, passed = self.groups[conv.group_key].best_agents(
            strategy, conv.cost, conv.declined
        )
        if not winners:
            return False
        self._offer(conv, winners, strategy, passed, reason=self._why(strategy, winners))
        return True

    def _stranded(self, queue: QueueRuntime) -> bool:
        """The queue relaxes by presence and no agent meeting its skills is online."""
        if not queue.settings.relax_when_none_online:
            return False
        skilled = self.groups.get(queue.plan[0])
        return skilled is None or skilled.online == 0

    def _presence_queues(self, agent: Agent) -> list[str]:
        """The queues relaxing by presence whose skilled agents include ``agent``."""
        return [
            queue_id
            for queue_id, queue in self.queues.items()
            if queue.settings.relax_when_none_online and queue.plan[0].admits(agent.profile)
        ]

    def _relax_stranded(self, queue_ids: Iterable[str]) -> None:
        """Route the conversations waiting in those of ``queue_ids`` left with no skilled agent
        online: ``_route`` relaxes them first. Runs when the last one signs out or loses the
        skills (rare), so scanning the conversations is affordable."""
        stranded = {q for q in queue_ids if q in self.queues and self._stranded(self.queues[q])}
        if not stranded:
            return
        waiting = [
            conv
            for conv in self.conversations.values()
            if conv.state is S.QUEUED and not conv.held and conv.queue_id in stranded
        ]
        for conv in sorted(waiting, key=lambda conv: (conv.effective_at, conv.seq)):
            self._route(conv)

    def _offer(
        self,
        conv: Conversation,
        winners: list[Agent],
        strategy: Strategy,
        passed: list[Candidate],
        reason: str,
    ) -> None:
        now = self.clock.now()
        timeout = self._queue_of(conv).settings.offer_timeout
        chosen = [Candidate(a.agent_id, "chosen") for a in winners[:MAX_CANDIDATES]]
        decision = Decision(
            step=conv.step,
            filters=self.groups[conv.group_key].description,
            strategy=strategy.value,
            candidates=tuple(chosen + passed)[:MAX_CANDIDATES],
            winners=tuple(a.agent_id for a in winners),
            score=self.score(conv, now),
            reason=reason,
        )
        self._emit(
            ev.OfferMade(
                tenant=self.tenant,
                at=now,
                offer_id=f"o{self._counters['offer'] + 1}",
                conversation_id=conv.conversation_id,
                agent_ids=decision.winners,
                deadline=now + timeout,
                broadcast=strategy is Strategy.BROADCAST,
                decision=decision,
                channel=conv.channel,
                queue_id=conv.queue_id or "",
                customer=conv.customer,
                preview=conv.preview,
                hand_off=conv.hand_off,
            )
        )

    def _why(self, strategy: Strategy, winners: list[Agent]) -> str:
        best = winners[0]
        if strategy is Strategy.BROADCAST:
            return f"broadcast to {len(winners)} eligible agents"
        if strategy is Strategy.LEAST_BUSY:
            return f"least busy: load {best.load / UNIT:g} of {best.capacity / UNIT:g}"
        if strategy is Strategy.ROUND_ROBIN:
            return "round robin: offered work longest ago"
        return f"longest idle: last assigned {self.clock.now() - best.last_assigned_at:.0f}s ago"

    def score(self, conv: Conversation, now: float | None = None) -> float:
        """Seconds waited plus (conversation + queue priority) times the tenant's head start."""
        return (self.clock.now() if now is None else now) - conv.effective_at

    def _pull(self, agent: Agent) -> None:
        """While the agent has room, offer it the highest-scoring conversation it may serve across
        all its groups (cross-queue fairness)."""
        self._flush_listings()
        while agent.available:
            best = None
            for group in agent.groups:
                for entry in group.heads_for(agent):
                    if best is None or entry[:2] < best[:2]:
                        best = entry
            if best is None:
                return
            conv = best[2]
            strategy = self._queue_of(conv).settings.strategy
            if strategy is Strategy.BROADCAST:
                self._route(conv)  # everyone eligible sees it, this agent included
            else:
                reason = "freed capacity took the highest-scoring conversation it may serve"
                self._offer(conv, [agent], strategy, [], reason=reason)

    def _on_queued(self, e: ev.ConversationQueued) -> None:
        conv = self.conversations[e.conversation_id]
        self._stop_flow(conv)
        self.open_conversations[conv.customer_id, conv.channel] = conv.conversation_id  # reopened
        self._leave_queue(conv)
        self._release_owner(conv)
        for kind in (TimerKind.CUSTOMER_IDLE, TimerKind.AGENT_IDLE, TimerKind.WRAP_UP):
            conv.deadlines.pop(kind, None)
        conv.deadlines.pop(TimerKind.RETENTION, None)
        conv.state = S.QUEUED
        conv.queue_id = e.queue_id
        conv.priority = e.priority
        conv.enqueued_at = e.enqueued_at
        if conv.first_queued_at is None:
            conv.first_queued_at = e.enqueued_at
        queue_priority = self.queues[e.queue_id].settings.priority
        head_start = (e.priority + queue_priority) * self.settings.head_start_seconds
        conv.effective_at = e.enqueued_at - head_start
        conv.plan = e.plan
        conv.plan_offsets = e.offsets
        conv.plan_started_at = e.at
        conv.step = 0
        conv.held = e.held
        conv.declined = set(e.exclude)
        conv.closed_at = None
        conv.close_reason = None
        for key in e.plan:
            self._ref(key)
        if e.held:
            self.queues[e.queue_id].held[conv.conversation_id] = None
        else:
            self._list_later(conv)
            if len(e.offsets) > 1:
                self._set_deadline(conv, TimerKind.STEP, e.at + e.offsets[1])
        self._set_deadline(conv, TimerKind.MAX_WAIT, e.max_wait_at)

    def _on_stepped(self, e: ev.ConversationStepped) -> None:
        conv = self.conversations[e.conversation_id]
        routable = conv.state is S.QUEUED
        self._delist(conv)
        if e.relaxed:
            self._relax_plan(conv, e.step)
        conv.step = e.step
        conv.declined.clear()
        if routable:
            self._list_later(conv)
        following = e.step + 1
        self._set_deadline(
            conv,
            TimerKind.STEP,
            conv.plan_started_at + conv.plan_offsets[following]
            if following < len(conv.plan_offsets)
            else None,
        )

    def _relax_plan(self, conv: Conversation, step: int) -> None:
        """From ``step`` on, the plan is the queue's designations with no skills (it ends there:
        later timed steps would only narrow it again)."""
        assert conv.queue_id is not None
        relaxed = relaxed_key(self.queues[conv.queue_id].settings)
        self._ref(relaxed)
        for key in conv.plan[step:]:
            self._unref(key)
        conv.plan = (*conv.plan[:step], relaxed)
        conv.plan_offsets = conv.plan_offsets[: step + 1]
