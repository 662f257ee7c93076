"""One tenant's routing: command handlers that decide, and ``_apply`` that changes state.

Every handler first validates the whole command (raising a ``RoutingError`` before anything
changes), then emits events. ``_emit`` applies each event at once, so later decisions in the same
command see its effect, and replaying the events elsewhere rebuilds the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from core.routing import commands as c
from core.routing import events as ev
from core.routing.clock import Clock
from core.routing.effects import ArmTimer, Effect
from core.routing.errors import (
    AlreadyExists,
    CapacityExceeded,
    Duplicate,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from core.routing.explain import MAX_CANDIDATES, Candidate, Decision
from core.routing.hours import HoursStatus, next_change, status_at, validate_hours
from core.routing.model import (
    MAX_SKILL_LEVEL,
    MIN_SKILL_LEVEL,
    PREVIEW_LENGTH,
    AgentStatus,
    CloseReason,
    ConversationState,
    DeclineReason,
    MessageBody,
    Mode,
    Outcome,
    QueueReason,
    QueueSettings,
    Sender,
    SignOutPolicy,
    Strategy,
    SystemMessage,
    TenantSettings,
    TransferOutcome,
    TransferTarget,
)
from core.routing.pools import Group, GroupKey
from core.routing.state import (
    EXCLUSIVE,
    UNIT,
    Agent,
    Conversation,
    Offer,
    QueueRuntime,
    TransferRecord,
    to_units,
)
from core.routing.timers import TimerHeap, TimerKind

S = ConversationState
MAX_MESSAGE_TEXT = 65_536
MAX_ATTACHMENTS = 20
MAX_PROVIDER_ID = 256
KEPT_DECISIONS = 10
HANDLE_TIME_SMOOTHING = 0.1
"""Weight of the latest handle time in a queue's moving average (for wait estimates)."""


class _NoClock:
    def now(self) -> float:
        raise RuntimeError("a restored router needs a clock: set router.clock first")


class Router:
    """The routing state and decisions of one tenant. Not thread-safe; one owner calls it."""

    def __init__(self, tenant: str, clock: Clock) -> None:
        self.tenant = tenant
        self.clock = clock
        self.settings = TenantSettings()
        self.skills: set[str] = set()
        self.departments: dict[str, str] = {}
        self.agents: dict[str, Agent] = {}
        self.queues: dict[str, QueueRuntime] = {}
        self.conversations: dict[str, Conversation] = {}
        self.offers: dict[str, Offer] = {}
        self.transfers: dict[str, tuple[Conversation, TransferRecord]] = {}
        """Pending transfers to agents."""
        self.groups: dict[GroupKey, Group] = {}
        self.last_served: dict[str, tuple[str, float]] = {}
        """Customer -> (agent, when) of their latest service, for sticky routing."""
        self.open_conversations: dict[tuple[str, str], str] = {}
        """(customer, channel) -> the customer's conversation there that is not over yet (not
        wrap-up, closed or abandoned): a customer has at most one per channel."""
        self._sticky_horizon = 0.0
        """The longest sticky window of any queue: older ``last_served`` entries can go."""
        self.timers = TimerHeap()
        self.version = 0
        """Events applied so far."""
        self._counters = {"agent": 0, "conversation": 0, "offer": 0, "transfer": 0, "rotation": 0}
        self.message_seq = 0
        """The highest message id given out in this tenant (messages are numbered here)."""
        self.message_keys: dict[tuple[str, str], tuple[int, str]] = {}
        """(channel, idempotency key) -> (message id, conversation id), for the conversations in
        memory; older keys are the store's to find (see ``core.runtime.shard``)."""
        self._unlisted: list[Conversation] = []
        self._events: list[ev.Event] = []
        self._effects: list[Effect] = []
        self._bind()

    def _bind(self) -> None:
        """The tables from command and event types to the methods that handle them."""
        self._handlers: dict[type, Callable[[Any], None]] = {
            c.ConfigureTenant: self._configure_tenant,
            c.DefineSkill: self._define_skill,
            c.DefineDepartment: self._define_department,
            c.ConfigureAgent: self._configure_agent,
            c.RemoveAgent: self._remove_agent,
            c.ConfigureQueue: self._configure_queue,
            c.SetAgentStatus: self._set_agent_status,
            c.AcceptOffer: self._accept_offer,
            c.RejectOffer: self._reject_offer,
            c.TakeConversation: self._take,
            c.EndConversation: self._end,
            c.FinishWrapUp: self._finish_wrap_up,
            c.RequestTransfer: self._request_transfer,
            c.AnswerTransfer: self._answer_transfer,
            c.CancelTransfer: self._cancel_transfer,
            c.SetMode: self._set_mode,
            c.TagConversation: self._tag,
            c.ForceAssign: self._force_assign,
            c.Monitor: self._monitor,
            c.StartConversation: self._start,
            c.RequestAgent: self._request_agent,
            c.RecordMessage: self._record_message,
            c.ReceiveMessage: self._receive_message,
            c.CustomerLeft: self._customer_left,
            c.RemoveSkill: self._remove_skill,
            c.RemoveDepartment: self._remove_department,
            c.RemoveQueue: self._remove_queue,
            c.RecordReceipt: self._record_receipt,
            c.NotifyTyping: self._notify_typing,
            c.ReopenConversation: self._reopen,
            c.OpenForAgent: self._open_for_agent,
        }
        self._appliers: dict[type, Callable[[Any], None]] = {
            ev.TenantConfigured: self._on_tenant_configured,
            ev.SkillDefined: self._on_skill_defined,
            ev.DepartmentDefined: self._on_department_defined,
            ev.SkillRemoved: self._on_skill_removed,
            ev.DepartmentRemoved: self._on_department_removed,
            ev.QueueRemoved: self._on_queue_removed,
            ev.AgentConfigured: self._on_agent_configured,
            ev.AgentRemoved: self._on_agent_removed,
            ev.QueueConfigured: self._on_queue_configured,
            ev.QueueHoursChanged: self._on_queue_hours_changed,
            ev.AgentStatusChanged: self._on_agent_status_changed,
            ev.ConversationStarted: self._on_started,
            ev.ConversationQueued: self._on_queued,
            ev.ConversationStepped: self._on_stepped,
            ev.OfferMade: self._on_offer_made,
            ev.OfferAccepted: self._on_offer_accepted,
            ev.OfferDeclined: self._on_offer_declined,
            ev.ConversationAssigned: self._on_assigned,
            ev.MessageRecorded: self._on_message,
            ev.SystemMessageSent: self._on_system_message,
            ev.ReceiptRecorded: self._on_other_side_only,
            ev.TypingChanged: self._on_other_side_only,
            ev.CustomerIdleReminded: self._on_customer_idle_reminded,
            ev.AgentIdleNotified: self._on_agent_idle_notified,
            ev.ConversationEnded: self._on_ended,
            ev.WrapUpFinished: self._on_wrap_up_finished,
            ev.ConversationAbandoned: self._on_abandoned,
            ev.ConversationReturnedToBot: self._on_returned_to_bot,
            ev.ConversationForgotten: self._on_forgotten,
            ev.MonitorChanged: self._on_monitor_changed,
            ev.TagsChanged: self._on_tags_changed,
            ev.TransferRequested: self._on_transfer_requested,
            ev.TransferResolved: self._on_transfer_resolved,
            ev.ConversationTransferred: self._on_transferred,
        }

    def __getstate__(self) -> dict[str, Any]:
        """A snapshot of the state, for the store; the clock and method tables are not state."""
        state = dict(self.__dict__)
        for transient in ("clock", "_handlers", "_appliers", "_events", "_effects"):
            del state[transient]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a snapshot; the owner sets ``clock`` before using the router."""
        self.__dict__.update(state)
        self.clock = _NoClock()
        self._events, self._effects = [], []
        self._bind()

    # === entry points ============================================================================

    def execute(self, command: c.Command) -> tuple[list[ev.Event], list[Effect]]:
        handler = self._handlers.get(type(command))
        if handler is None:
            raise InvalidArgument(f"unknown command {type(command).__name__}")
        self._events, self._effects = [], []
        handler(command)
        self._flush_listings()
        return self._events, self._effects

    def tick(self) -> tuple[list[ev.Event], list[Effect]]:
        """Fire every timer due at the clock's now (including those that firing arms)."""
        self._events, self._effects = [], []
        now = self.clock.now()
        while (due := self.timers.pop_due(now)) is not None:
            self._fire(*due)
            self._flush_listings()
        return self._events, self._effects

    def apply(self, event: ev.Event) -> None:
        """Apply a recorded event (replay); no decisions are taken and no effects produced."""
        self._apply(event)
        self._flush_listings()

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    # === emitting ================================================================================

    def _emit(self, event: ev.Event) -> None:
        self._apply(event)
        self._events.append(event)

    def _apply(self, event: ev.Event) -> None:
        self._appliers[type(event)](event)
        self.version += 1

    def _say(self, conv: Conversation, kind: SystemMessage, **params: object) -> None:
        text = self.settings.text(kind, conv.language)
        if text:
            self._emit(
                ev.SystemMessageSent(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=conv.conversation_id,
                    kind=kind,
                    language=conv.language,
                    text=text.format(**params) if params else text,
                    message_id=self.message_seq + 1,
                    channel=conv.channel,
                )
            )

    def _arm(self, kind: TimerKind, subject: str, deadline: float) -> None:
        """Index a deadline already stored in an entity (called from appliers only)."""
        self.timers.arm(deadline, kind, subject)
        self._effects.append(
            ArmTimer(tenant=self.tenant, kind=kind, subject=subject, deadline=deadline)
        )

    def _set_deadline(self, conv: Conversation, kind: TimerKind, deadline: float | None) -> None:
        if deadline is None:
            conv.deadlines.pop(kind, None)
        else:
            conv.deadlines[kind] = deadline
            self._arm(kind, conv.conversation_id, deadline)

    def _next(self, counter: str) -> int:
        self._counters[counter] += 1
        return self._counters[counter]

    # === lookups and validation ==================================================================

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id!r} not found", agent_id=agent_id)
        return agent

    def _queue(self, queue_id: str) -> QueueRuntime:
        queue = self.queues.get(queue_id)
        if queue is None:
            raise NotFound(f"queue {queue_id!r} not found", queue_id=queue_id)
        return queue

    def _conversation(self, conversation_id: str) -> Conversation:
        conv = self.conversations.get(conversation_id)
        if conv is None:
            raise NotFound(
                f"conversation {conversation_id!r} not found", conversation_id=conversation_id
            )
        return conv

    def _require_state(self, conv: Conversation, *states: ConversationState) -> None:
        if conv.state not in states:
            allowed = ", ".join(s.value for s in states)
            raise FailedPrecondition(
                f"conversation {conv.conversation_id!r} is {conv.state.value}, not {allowed}",
                conversation_id=conv.conversation_id,
                state=conv.state.value,
            )

    def _require_owner(self, conv: Conversation, agent_id: str) -> None:
        if conv.owner != agent_id:
            raise PermissionDenied(
                f"agent {agent_id!r} does not own conversation {conv.conversation_id!r}",
                conversation_id=conv.conversation_id,
                agent_id=agent_id,
            )

    def _live_offer(self, offer_id: str, agent_id: str) -> Offer:
        offer = self.offers.get(offer_id)
        if offer is None:
            raise FailedPrecondition(
                f"offer {offer_id!r} is no longer live (expired, rescinded or taken)",
                offer_id=offer_id,
            )
        if agent_id not in offer.agent_ids:
            raise PermissionDenied(
                f"offer {offer_id!r} was not made to agent {agent_id!r}", offer_id=offer_id
            )
        return offer

    def _pending_transfer(self, transfer_id: str) -> tuple[Conversation, TransferRecord]:
        found = self.transfers.get(transfer_id)
        if found is None:
            raise FailedPrecondition(
                f"transfer {transfer_id!r} is not pending", transfer_id=transfer_id
            )
        return found

    def _require_room(self, agent: Agent, conv: Conversation) -> None:
        if not agent.fits(conv.cost):
            raise CapacityExceeded(
                f"agent {agent.agent_id!r} has no room for conversation "
                f"{conv.conversation_id!r} (load {agent.load / UNIT:g} of "
                f"{agent.capacity / UNIT:g})",
                agent_id=agent.agent_id,
                conversation_id=conv.conversation_id,
            )

    def _require_eligible(self, agent: Agent, conv: Conversation) -> None:
        key = conv.group_key
        if not key.admits(agent.profile):
            raise FailedPrecondition(
                f"agent {agent.agent_id!r} does not meet {key.describe()} "
                f"for conversation {conv.conversation_id!r}",
                agent_id=agent.agent_id,
                conversation_id=conv.conversation_id,
            )

    def _require_online(self, agent: Agent) -> None:
        if agent.status is not AgentStatus.ONLINE:
            raise FailedPrecondition(
                f"agent {agent.agent_id!r} is {agent.status.value}", agent_id=agent.agent_id
            )

    def _queue_of(self, conv: Conversation) -> QueueRuntime:
        """The queue a waiting or routed conversation belongs to (it always has one)."""
        assert conv.queue_id is not None
        return self.queues[conv.queue_id]

    def _resolve_queue(self, queue_id: str | None, region: str) -> str | None:
        if queue_id is not None:
            self._queue(queue_id)
            return queue_id
        for candidate in (self.settings.region_queues.get(region), self.settings.default_queue):
            if candidate in self.queues:
                return candidate
        return None

    def _validate_levels(self, requirements: Iterable[tuple[str, int]], what: str) -> None:
        for skill, level in requirements:
            if skill not in self.skills:
                raise NotFound(f"{what} names unknown skill {skill!r}", skill=skill)
            if not MIN_SKILL_LEVEL <= level <= MAX_SKILL_LEVEL:
                raise InvalidArgument(
                    f"{what}: level {level} of {skill!r} is outside "
                    f"{MIN_SKILL_LEVEL}..{MAX_SKILL_LEVEL}",
                    skill=skill,
                )

    # === administration ==========================================================================

    def _configure_tenant(self, cmd: c.ConfigureTenant) -> None:
        s = cmd.settings
        if any(w <= 0 for w in s.channel_weights.values()):
            raise InvalidArgument("channel weights must be positive")
        if s.misses_before_away < 0:
            raise InvalidArgument("misses_before_away must be >= 0")
        if s.head_start_seconds < 0 or s.wrap_up_seconds < 0 or s.transfer_timeout <= 0:
            raise InvalidArgument("head start and wrap-up must be >= 0, transfer timeout > 0")
        for name in ("customer_idle_remind", "customer_idle_close", "agent_idle_notify"):
            value = getattr(s, name)
            if value is not None and value <= 0:
                raise InvalidArgument(f"{name} must be positive when set")
        names = [cs.name for cs in s.custom_statuses]
        if len(names) != len(set(names)) or any(not n for n in names):
            raise InvalidArgument("custom status names must be unique and non-empty")
        self._emit(ev.TenantConfigured(tenant=self.tenant, at=self.clock.now(), settings=s))

    def _define_skill(self, cmd: c.DefineSkill) -> None:
        if not cmd.skill:
            raise InvalidArgument("a skill needs a name")
        self._emit(ev.SkillDefined(tenant=self.tenant, at=self.clock.now(), skill=cmd.skill))

    def _define_department(self, cmd: c.DefineDepartment) -> None:
        if not cmd.department:
            raise InvalidArgument("a department needs an id")
        self._emit(
            ev.DepartmentDefined(
                tenant=self.tenant, at=self.clock.now(), department=cmd.department, name=cmd.name
            )
        )

    def _remove_skill(self, cmd: c.RemoveSkill) -> None:
        if cmd.skill not in self.skills:
            raise NotFound(f"unknown skill {cmd.skill!r}", skill=cmd.skill)
        holders = sorted(a.agent_id for a in self.agents.values() if cmd.skill in a.profile.skills)
        queues = sorted(
            q.settings.queue_id
            for q in self.queues.values()
            if any(r.skill == cmd.skill for r in q.settings.requirements)
        )
        if holders or queues:
            raise FailedPrecondition(
                f"skill {cmd.skill!r} is in use", agents=",".join(holders), queues=",".join(queues)
            )
        self._emit(ev.SkillRemoved(tenant=self.tenant, at=self.clock.now(), skill=cmd.skill))

    def _remove_department(self, cmd: c.RemoveDepartment) -> None:
        department = cmd.department
        if department not in self.departments:
            raise NotFound(f"unknown department {department!r}", department=department)
        members = sorted(
            a.agent_id for a in self.agents.values() if department in a.profile.departments
        )
        queues = sorted(
            q.settings.queue_id
            for q in self.queues.values()
            if department in q.settings.designated_departments
        )
        if members or queues:
            raise FailedPrecondition(
                f"department {department!r} is in use",
                agents=",".join(members),
                queues=",".join(queues),
            )
        self._emit(
            ev.DepartmentRemoved(tenant=self.tenant, at=self.clock.now(), department=department)
        )

    def _remove_queue(self, cmd: c.RemoveQueue) -> None:
        queue_id = self._queue(cmd.queue_id).settings.queue_id
        s = self.settings
        if s.default_queue == queue_id or queue_id in s.region_queues.values():
            raise FailedPrecondition(
                f"queue {queue_id!r} is the tenant's default or a region's queue"
            )
        overflowing = sorted(
            q.settings.queue_id
            for q in self.queues.values()
            if q.settings.overflow_queue == queue_id
        )
        if overflowing:
            raise FailedPrecondition(
                f"queues overflow into {queue_id!r}", queues=",".join(overflowing)
            )
        if any(
            conv.queue_id == queue_id and not conv.state.is_terminal
            for conv in self.conversations.values()
        ):
            raise FailedPrecondition(f"queue {queue_id!r} has conversations that are not over")
        self._emit(ev.QueueRemoved(tenant=self.tenant, at=self.clock.now(), queue_id=queue_id))

    def _configure_agent(self, cmd: c.ConfigureAgent) -> None:
        p = cmd.profile
        if not p.agent_id:
            raise InvalidArgument("an agent needs an id")
        if p.capacity <= 0 or to_units(p.capacity) <= 0:
            raise InvalidArgument(f"capacity must be positive, got {p.capacity}")
        self._validate_levels(p.skills.items(), f"agent {p.agent_id!r}")
        for department in p.departments:
            if department not in self.departments:
                raise NotFound(f"unknown department {department!r}", department=department)
        existing = self.agents.get(p.agent_id)
        if existing is not None and existing.load - existing.override > to_units(p.capacity):
            raise FailedPrecondition(
                f"agent {p.agent_id!r} holds {existing.load / UNIT:g} units; "
                f"capacity {p.capacity:g} is too small until some are released"
            )
        skilled_in = self._presence_queues(existing) if existing is not None else []
        self._emit(ev.AgentConfigured(tenant=self.tenant, at=self.clock.now(), profile=p))
        self._relax_stranded(skilled_in)
        self._pull(self.agents[p.agent_id])

    def _remove_agent(self, cmd: c.RemoveAgent) -> None:
        agent = self._agent(cmd.agent_id)
        if agent.status is not AgentStatus.OFFLINE or agent.load or agent.conversations:
            raise FailedPrecondition(
                f"agent {cmd.agent_id!r} must be signed out and hold nothing to be removed"
            )
        self._emit(
            ev.AgentRemoved(tenant=self.tenant, at=self.clock.now(), agent_id=agent.agent_id)
        )

    def _configure_queue(self, cmd: c.ConfigureQueue) -> None:
        s = cmd.settings
        if not s.queue_id:
            raise InvalidArgument("a queue needs an id")
        self._validate_levels(
            [(r.skill, r.min_level) for r in s.requirements], f"queue {s.queue_id!r}"
        )
        if s.offer_timeout <= 0:
            raise InvalidArgument("offer_timeout must be positive")
        if s.max_wait is not None and s.max_wait <= 0:
            raise InvalidArgument("max_wait must be positive when set")
        if s.sticky_window is not None and (s.sticky_window <= 0 or s.sticky_timeout <= 0):
            raise InvalidArgument("sticky window and timeout must be positive")
        previous = 0.0
        for step in s.relaxation:
            if step.after_seconds <= previous or step.level_drop < 0:
                raise InvalidArgument(
                    "relaxation steps need increasing positive times and level drops >= 0"
                )
            previous = step.after_seconds
        if s.overflow_queue is not None:
            if s.overflow_queue == s.queue_id:
                raise InvalidArgument("a queue cannot overflow into itself")
            self._queue(s.overflow_queue)
        for department in s.designated_departments:
            if department not in self.departments:
                raise NotFound(f"unknown department {department!r}", department=department)
        for agent_id in s.designated_agents:
            self._agent(agent_id)
        if s.hours is not None:
            validate_hours(s.hours)
        self._emit(ev.QueueConfigured(tenant=self.tenant, at=self.clock.now(), settings=s))
        self._release_held(self.queues[s.queue_id])
        self._relax_stranded([s.queue_id])

    # === agents ==================================================================================

    def _set_agent_status(self, cmd: c.SetAgentStatus) -> None:
        agent = self._agent(cmd.agent_id)
        status = cmd.status
        if cmd.custom_status is not None:
            custom = self.settings.custom_status(cmd.custom_status)
            if custom is None:
                raise NotFound(f"unknown custom status {cmd.custom_status!r}")
            if status is not None and custom.base is not status:
                raise InvalidArgument(
                    f"custom status {custom.name!r} is a kind of {custom.base.value}, "
                    f"not {status.value}",
                    field="status",
                )
            status = custom.base  # naming the custom status alone means its base
        if status is None:
            raise InvalidArgument("a status or a custom status is required", field="status")
        held = self._held_on_sign_out(agent) if status is AgentStatus.OFFLINE else []
        self._change_status(agent, status, cmd.custom_status, "agent")
        for conv in held:
            self._hand_back(conv, agent)

    def _held_on_sign_out(self, agent: Agent) -> list[Conversation]:
        """The active conversations signing out hands back to their queues; refused (nothing
        changes) while the agent owns any and the tenant's policy is to refuse."""
        held = [
            conv
            for conv in (self.conversations[cid] for cid in sorted(agent.conversations))
            if conv.state is S.ACTIVE
        ]
        if held and self.settings.sign_out_with_conversations is SignOutPolicy.REFUSE:
            raise FailedPrecondition(
                f"agent {agent.agent_id!r} owns {len(held)} active conversation(s): "
                "end or transfer them before signing out",
                reason="HOLDING_CONVERSATIONS",
                agent_id=agent.agent_id,
                conversations=",".join(conv.conversation_id for conv in held),
            )
        return held

    def _hand_back(self, conv: Conversation, agent: Agent) -> None:
        """Return a conversation of an agent who signed out to its queue (``REQUEUE``)."""
        self._rescind_transfer(conv)
        if conv.queue_id in self.queues:
            assert conv.queue_id is not None
            self._enqueue(
                conv, conv.queue_id, QueueReason.AGENT_SIGNED_OUT, exclude=(agent.agent_id,)
            )
        else:  # its queue is gone (only older logs allow that): the bot answers meanwhile
            self._to_bot(conv, by=agent.agent_id)

    def _change_status(
        self, agent: Agent, status: AgentStatus, custom: str | None, reason: str
    ) -> None:
        now = self.clock.now()
        was_online = agent.status is AgentStatus.ONLINE
        self._emit(
            ev.AgentStatusChanged(
                tenant=self.tenant,
                at=now,
                agent_id=agent.agent_id,
                status=status,
                custom_status=custom,
                reason=reason,
            )
        )
        if status is AgentStatus.ONLINE:
            self._pull(agent)
            return
        for offer_id in sorted(agent.offers):
            offer = self.offers[offer_id]
            if not offer.broadcast:
                self._decline(offer, DeclineReason.RESCINDED)
        if status is AgentStatus.OFFLINE:
            for transfer_id in sorted(agent.transfers_in):
                conv, record = self.transfers[transfer_id]
                self._resolve_transfer(conv, record, TransferOutcome.RESCINDED)
        if was_online:
            self._relax_stranded(self._presence_queues(agent))

    def _accept_offer(self, cmd: c.AcceptOffer) -> None:
        offer = self._live_offer(cmd.offer_id, cmd.agent_id)
        agent = self.agents[cmd.agent_id]
        conv = self.conversations[offer.conversation_id]
        if offer.broadcast:
            self._require_online(agent)
            self._require_room(agent, conv)
        self._emit(
            ev.OfferAccepted(
                tenant=self.tenant,
                at=self.clock.now(),
                offer_id=offer.offer_id,
                conversation_id=conv.conversation_id,
                agent_id=agent.agent_id,
                agent_ids=offer.agent_ids,
            )
        )
        self._joined(conv, agent)

    def _reject_offer(self, cmd: c.RejectOffer) -> None:
        offer = self._live_offer(cmd.offer_id, cmd.agent_id)
        self._decline(offer, DeclineReason.REJECTED, declined_by=(cmd.agent_id,))

    def _decline(
        self,
        offer: Offer,
        reason: DeclineReason,
        declined_by: tuple[str, ...] = (),
        missed_by: tuple[str, ...] = (),
        reroute: bool = True,
    ) -> None:
        """End an offer without an owner; re-route the conversation and let the freed agents
        pull other work (unless the caller is about to decide the conversation itself)."""
        conv = self.conversations[offer.conversation_id]
        recipients = [self.agents[a] for a in offer.agent_ids]
        self._emit(
            ev.OfferDeclined(
                tenant=self.tenant,
                at=self.clock.now(),
                offer_id=offer.offer_id,
                conversation_id=conv.conversation_id,
                reason=reason,
                agent_ids=offer.agent_ids,
                missed_by=missed_by,
                declined_by=declined_by,
            )
        )
        limit = self.settings.misses_before_away
        for agent in recipients:
            if agent.agent_id in missed_by and limit and agent.missed_offers >= limit:
                self._change_status(agent, AgentStatus.AWAY, None, "missed_offers")
        if reroute:
            self._route(conv)
            for agent in recipients:
                self._pull(agent)

    def _rescind_offer(self, conv: Conversation) -> list[Agent]:
        """Withdraw the conversation's live offer, if any, without re-routing it; the caller
        decides the conversation's fate and then lets the returned recipients pull new work."""
        if conv.offer is None:
            return []
        offer = self.offers[conv.offer]
        self._decline(offer, DeclineReason.RESCINDED, reroute=False)
        return [self.agents[a] for a in offer.agent_ids]

    def _take(self, cmd: c.TakeConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        agent = self._agent(cmd.agent_id)
        self._require_state(conv, S.QUEUED, S.OFFERED)
        self._require_online(agent)
        self._require_eligible(agent, conv)
        offer = self.offers.get(conv.offer) if conv.offer else None
        if offer is not None and agent.agent_id in offer.agent_ids:
            self._accept_offer(
                c.AcceptOffer(tenant=self.tenant, offer_id=offer.offer_id, agent_id=agent.agent_id)
            )
            return
        self._require_room(agent, conv)
        self._assign(conv, agent, via="take", by=agent.agent_id, override=False)

    def _force_assign(self, cmd: c.ForceAssign) -> None:
        conv = self._conversation(cmd.conversation_id)
        agent = self._agent(cmd.agent_id)
        self._require_state(conv, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.owner == agent.agent_id:
            raise FailedPrecondition(f"agent {agent.agent_id!r} already owns it")
        if agent.status is AgentStatus.OFFLINE:
            raise FailedPrecondition(f"agent {agent.agent_id!r} is signed out")
        self._require_eligible(agent, conv)
        fits = agent.fits(conv.cost)
        if not fits and not cmd.override_capacity:
            self._require_room(agent, conv)
        self._assign(conv, agent, via="force", by=cmd.supervisor_id, override=not fits)

    def _assign(
        self, conv: Conversation, agent: Agent, *, via: str, by: str, override: bool
    ) -> None:
        """Make ``agent`` the owner now, rescinding whatever offer or transfer stood in the way."""
        previous = self.agents.get(conv.owner) if conv.owner else None
        self._rescind_transfer(conv)
        displaced = self._rescind_offer(conv)
        self._emit(
            ev.ConversationAssigned(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                agent_id=agent.agent_id,
                via=via,
                by=by,
                override_capacity=override,
                previous_owner=conv.owner,
            )
        )
        self._joined(conv, agent)
        for other in (*displaced, *([previous] if previous else [])):
            self._pull(other)

    def _joined(self, conv: Conversation, agent: Agent) -> None:
        self._say(conv, SystemMessage.AGENT_JOINED, agent=agent.profile.name or agent.agent_id)

    def _end(self, cmd: c.EndConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._agent(cmd.agent_id)
        self._require_state(conv, S.ACTIVE)
        self._require_owner(conv, cmd.agent_id)
        self._finish(conv, CloseReason.AGENT_ENDED, cmd.outcome, by=cmd.agent_id)

    def _finish(
        self, conv: Conversation, reason: CloseReason, outcome: Outcome | None, by: str = ""
    ) -> None:
        """End a live conversation: wrap-up if the tenant has one, else close and free the agent."""
        owner = self.agents[conv.owner] if conv.owner else None
        self._rescind_transfer(conv)
        now = self.clock.now()
        wrap_up = self.settings.wrap_up_seconds
        self._emit(
            ev.ConversationEnded(
                tenant=self.tenant,
                at=now,
                conversation_id=conv.conversation_id,
                reason=reason,
                outcome=outcome,
                by=by,
                wrap_up_until=now + wrap_up if wrap_up and owner else None,
                agent_id=conv.owner,
            )
        )
        if reason is CloseReason.AGENT_ENDED:
            self._say(conv, SystemMessage.AGENT_ENDED)
        elif reason is CloseReason.CUSTOMER_IDLE:
            self._say(conv, SystemMessage.IDLE_CLOSED)
        if owner is not None:
            self._pull(owner)

    def _finish_wrap_up(self, cmd: c.FinishWrapUp) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.WRAP_UP)
        self._require_owner(conv, cmd.agent_id)
        self._close_wrap_up(conv)

    def _close_wrap_up(self, conv: Conversation) -> None:
        owner = self.agents[conv.owner] if conv.owner else None
        self._emit(
            ev.WrapUpFinished(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                agent_id=conv.owner,
            )
        )
        if owner is not None:
            self._pull(owner)

    # --- transfers ----------------------------------------------------------------------------

    def _request_transfer(self, cmd: c.RequestTransfer) -> None:
        conv = self._conversation(cmd.conversation_id)
        sender = self._agent(cmd.agent_id)
        self._require_state(conv, S.ACTIVE)
        self._require_owner(conv, sender.agent_id)
        if conv.transfer is not None:
            raise FailedPrecondition(
                f"conversation {conv.conversation_id!r} already has a pending transfer",
                transfer_id=conv.transfer,
            )
        now = self.clock.now()
        transfer_id = f"t{self._counters['transfer'] + 1}"
        if cmd.target is TransferTarget.AGENT:
            target = self._agent(cmd.target_id)
            if target is sender:
                raise InvalidArgument("an agent cannot transfer a conversation to themself")
            self._require_online(target)
            self._require_room(target, conv)
            self._emit(
                ev.TransferRequested(
                    tenant=self.tenant,
                    at=now,
                    transfer_id=transfer_id,
                    conversation_id=conv.conversation_id,
                    from_agent=sender.agent_id,
                    to_agent=target.agent_id,
                    note=cmd.note,
                    deadline=now + self.settings.transfer_timeout,
                )
            )
            return
        if cmd.target is TransferTarget.QUEUE:
            self._queue(cmd.target_id)
            queue_id = cmd.target_id
            plan: tuple[GroupKey, ...] | None = None
        else:
            if cmd.target_id not in self.departments:
                raise NotFound(f"department {cmd.target_id!r} not found")
            assert conv.queue_id is not None
            queue_id = conv.queue_id
            plan = (GroupKey(departments=frozenset({cmd.target_id})),)
        self._emit(
            ev.ConversationTransferred(
                tenant=self.tenant,
                at=now,
                transfer_id=transfer_id,
                conversation_id=conv.conversation_id,
                from_agent=sender.agent_id,
                target=cmd.target,
                target_id=cmd.target_id,
                note=cmd.note,
            )
        )
        self._enqueue(conv, queue_id, QueueReason.TRANSFER, plan=plan, exclude=(sender.agent_id,))
        self._pull(sender)

    def _rescind_transfer(self, conv: Conversation) -> None:
        if conv.transfer is not None:
            self._resolve_transfer(
                conv, self.transfers[conv.transfer][1], TransferOutcome.RESCINDED
            )

    def _answer_transfer(self, cmd: c.AnswerTransfer) -> None:
        conv, record = self._pending_transfer(cmd.transfer_id)
        if record.target_id != cmd.agent_id:
            raise PermissionDenied(f"transfer {cmd.transfer_id!r} is not addressed to you")
        if cmd.accept:
            self._resolve_transfer(conv, record, TransferOutcome.ACCEPTED)
        else:
            self._resolve_transfer(conv, record, TransferOutcome.REJECTED)

    def _cancel_transfer(self, cmd: c.CancelTransfer) -> None:
        conv, record = self._pending_transfer(cmd.transfer_id)
        if record.from_agent != cmd.agent_id:
            raise PermissionDenied(f"only {record.from_agent!r} may cancel this transfer")
        self._resolve_transfer(conv, record, TransferOutcome.CANCELLED)

    def _resolve_transfer(
        self, conv: Conversation, record: TransferRecord, outcome: TransferOutcome
    ) -> None:
        sender = self.agents[record.from_agent]
        target = self.agents[record.target_id]
        self._emit(
            ev.TransferResolved(
                tenant=self.tenant,
                at=self.clock.now(),
                transfer_id=record.transfer_id,
                conversation_id=conv.conversation_id,
                outcome=outcome,
                from_agent=record.from_agent,
                to_agent=record.target_id,
                note=record.note,
                requested_at=record.at,
                deadline=record.deadline,
            )
        )
        if outcome is TransferOutcome.ACCEPTED:
            self._joined(conv, target)
            self._pull(sender)
        else:
            self._pull(target)

    # --- modes, tags, monitoring ----------------------------------------------------------------

    def _set_mode(self, cmd: c.SetMode) -> None:
        conv = self._conversation(cmd.conversation_id)
        agent = self._agent(cmd.agent_id)
        {
            Mode.AUTO: self._mode_auto,
            Mode.SILENT: self._mode_silent,
            Mode.LIVE: self._mode_live,
            Mode.END: self._mode_end,
        }[cmd.mode](conv, agent)

    def _mode_auto(self, conv: Conversation, agent: Agent) -> None:
        """Hand the conversation (back) to the bot."""
        self._require_state(conv, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.state is S.ACTIVE:
            self._require_owner(conv, agent.agent_id)
        self._to_bot(conv, by=agent.agent_id)

    def _mode_silent(self, conv: Conversation, agent: Agent) -> None:
        """Watch silently; a conversation the bot was answering goes to its queue instead."""
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED, S.ACTIVE, S.WRAP_UP)
        queue_id = None
        if conv.state is S.BOT:
            queue_id = self._resolve_queue(conv.queue_id, conv.region)
            if queue_id is None:
                raise FailedPrecondition("no queue to hand the conversation to")
        if agent.agent_id not in conv.monitors:
            self._emit(
                ev.MonitorChanged(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=conv.conversation_id,
                    supervisor_id=agent.agent_id,
                    monitoring=True,
                )
            )
        if queue_id is not None:
            self._enqueue(conv, queue_id, QueueReason.SILENT_MODE)

    def _mode_live(self, conv: Conversation, agent: Agent) -> None:
        """Chat with the customer: take it from the queue, or over from the bot."""
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED)
        self._require_online(agent)
        if conv.state is not S.BOT:
            command = c.TakeConversation(
                tenant=self.tenant, agent_id=agent.agent_id, conversation_id=conv.conversation_id
            )
            self._take(command)
            return
        self._require_room(agent, conv)
        queue_id = self._resolve_queue(conv.queue_id, conv.region)
        if queue_id is None:
            raise FailedPrecondition("no queue to account the conversation to")
        # The agent chose this conversation themself: its plan names them alone.
        only_them = (GroupKey(agents=frozenset({agent.agent_id})),)
        self._enqueue(conv, queue_id, QueueReason.REQUESTED, plan=only_them, route=False)
        self._assign(conv, agent, via="live", by=agent.agent_id, override=False)

    def _mode_end(self, conv: Conversation, agent: Agent) -> None:
        """Complete the conversation as resolved."""
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.state is S.ACTIVE:
            self._require_owner(conv, agent.agent_id)
            self._finish(conv, CloseReason.AGENT_ENDED, Outcome.RESOLVED, by=agent.agent_id)
        else:
            self._close_waiting(conv, CloseReason.AGENT_ENDED, Outcome.RESOLVED, by=agent.agent_id)

    def _to_bot(self, conv: Conversation, by: str) -> None:
        owner = self.agents.get(conv.owner) if conv.owner else None
        self._rescind_transfer(conv)
        displaced = self._rescind_offer(conv)
        self._emit(
            ev.ConversationReturnedToBot(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                by=by,
                previous_owner=conv.owner,
            )
        )
        for agent in (*displaced, *([owner] if owner else [])):
            self._pull(agent)

    def _tag(self, cmd: c.TagConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        if cmd.add & cmd.remove:
            raise InvalidArgument("a tag cannot be both added and removed")
        tags = (conv.tags | cmd.add) - cmd.remove
        self._emit(
            ev.TagsChanged(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                tags=frozenset(tags),
            )
        )

    def _monitor(self, cmd: c.Monitor) -> None:
        conv = self._conversation(cmd.conversation_id)
        if cmd.stop:
            if cmd.supervisor_id not in conv.monitors:
                raise FailedPrecondition(f"{cmd.supervisor_id!r} is not monitoring it")
        else:
            if conv.state.is_terminal:
                raise FailedPrecondition("a closed conversation cannot be monitored")
            if cmd.supervisor_id in conv.monitors:
                raise FailedPrecondition(f"{cmd.supervisor_id!r} is already monitoring it")
        self._emit(
            ev.MonitorChanged(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                supervisor_id=cmd.supervisor_id,
                monitoring=not cmd.stop,
            )
        )

    # === conversations ===========================================================================

    def _start(self, cmd: c.StartConversation | c.ReceiveMessage) -> None:
        """Start a conversation, with its first message if there is one (both or neither)."""
        first = cmd.message if isinstance(cmd, c.ReceiveMessage) else cmd.first_message
        if not cmd.conversation_id or not cmd.channel or not cmd.customer_id:
            raise InvalidArgument("a conversation needs an id, a channel and a customer")
        if first is not None:
            self._check_new_message(cmd.channel, first)
        if cmd.conversation_id in self.conversations:
            raise AlreadyExists(
                f"conversation {cmd.conversation_id!r} exists", conversation_id=cmd.conversation_id
            )
        current = self.open_conversations.get((cmd.customer_id, cmd.channel))
        if current is not None:
            raise AlreadyExists(
                "the customer already has an open conversation on this channel",
                open_conversation=current,
            )
        queue_id = self._resolve_queue(cmd.queue_id, cmd.region)
        if queue_id is None and not cmd.with_bot:
            raise FailedPrecondition(
                "no queue given and the tenant has no region rule or default queue for it"
            )
        self._emit(
            ev.ConversationStarted(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=cmd.conversation_id,
                channel=cmd.channel,
                customer_id=cmd.customer_id,
                region=cmd.region,
                language=cmd.language or self.settings.default_language,
                priority=cmd.priority,
                tags=cmd.tags,
                with_bot=cmd.with_bot,
                queue_id=queue_id,
                customer=cmd.customer,
            )
        )
        conv = self.conversations[cmd.conversation_id]
        if first is not None:
            self._emit_message(conv, Sender.CUSTOMER, None, first)
        self._say(conv, SystemMessage.WELCOME)
        if not cmd.with_bot:
            assert queue_id is not None
            self._enqueue(conv, queue_id, QueueReason.REQUESTED)

    def _receive_message(self, cmd: c.ReceiveMessage) -> None:
        self._check_new_message(cmd.channel, cmd.message)
        current = self.open_conversations.get((cmd.customer_id, cmd.channel))
        if current is None:
            self._start(cmd)
        else:
            self._record_message(
                c.RecordMessage(
                    tenant=cmd.tenant,
                    conversation_id=current,
                    sender=Sender.CUSTOMER,
                    message=cmd.message,
                )
            )

    def _request_agent(self, cmd: c.RequestAgent) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.BOT)
        queue_id = self._resolve_queue(cmd.queue_id or conv.queue_id, conv.region)
        if queue_id is None:
            raise FailedPrecondition("no queue given and the tenant has no default queue")
        self._enqueue(conv, queue_id, QueueReason.REQUESTED, priority=cmd.priority)

    def _reopen(self, cmd: c.ReopenConversation) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.CLOSED, S.ABANDONED)
        current = self.open_conversations.get((conv.customer_id, conv.channel))
        if current is not None:
            raise AlreadyExists(
                "the customer has another open conversation on this channel",
                open_conversation=current,
            )
        queue_id = self._resolve_queue(cmd.queue_id or conv.queue_id, conv.region)
        if queue_id is None:
            raise FailedPrecondition("no queue given and the tenant has no default queue")
        self._enqueue(conv, queue_id, QueueReason.REOPENED)

    def _open_for_agent(self, cmd: c.OpenForAgent) -> None:
        """Everything is checked before the first event, so a refusal changes nothing."""
        agent = self._agent(cmd.agent_id)
        self._require_online(agent)
        conv = self.conversations.get(cmd.conversation_id)
        if conv is None:
            if not cmd.conversation_id or not cmd.channel or not cmd.customer_id:
                # naming only an id asks to reopen: this one is not held (or never was)
                raise NotFound(
                    f"conversation {cmd.conversation_id!r} not found",
                    conversation_id=cmd.conversation_id,
                )
            channel, customer_id, region = cmd.channel, cmd.customer_id, cmd.region
            queue_id = self._resolve_queue(cmd.queue_id, region)
        else:
            self._require_state(conv, S.CLOSED, S.ABANDONED)
            channel, customer_id, region = conv.channel, conv.customer_id, conv.region
            queue_id = self._resolve_queue(cmd.queue_id or conv.queue_id, region)
        current = self.open_conversations.get((customer_id, channel))
        if current is not None:
            raise AlreadyExists(
                "the customer has an open conversation on this channel",
                open_conversation=current,
            )
        if queue_id is None:
            raise FailedPrecondition("no queue given and the tenant has no default queue")
        queue = self.queues[queue_id]
        step = next((key for key in queue.plan if key.admits(agent.profile)), None)
        if step is None:
            raise FailedPrecondition(
                f"agent {agent.agent_id!r} meets no step of queue {queue_id!r}",
                agent_id=agent.agent_id,
                queue_id=queue_id,
            )
        cost = conv.cost if conv is not None else self._cost_of(channel)
        if not agent.fits(cost):
            raise CapacityExceeded(
                f"agent {agent.agent_id!r} has no room for another conversation",
                agent_id=agent.agent_id,
            )
        if conv is None:
            self._emit(
                ev.ConversationStarted(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=cmd.conversation_id,
                    channel=channel,
                    customer_id=customer_id,
                    region=region,
                    language=cmd.language or self.settings.default_language,
                    priority=0,
                    tags=cmd.tags,
                    with_bot=False,
                    queue_id=queue_id,
                    customer=cmd.customer,
                )
            )
            conv = self.conversations[cmd.conversation_id]
            reason = QueueReason.REQUESTED
        else:
            reason = QueueReason.REOPENED
        # one step, the agent's: the conversation is theirs before anyone else could be offered it
        self._enqueue(conv, queue_id, reason, plan=(step,), route=False)
        self._assign(conv, agent, via="follow_up", by=cmd.by, override=False)

    def _check_party(self, conv: Conversation, party: Sender, agent_id: str | None) -> None:
        """The customer, or the agent who owns ``conv``, is the one acting."""
        if party is Sender.AGENT:
            if agent_id is None:
                raise InvalidArgument("name the agent")
            self._require_owner(conv, agent_id)
        elif party is not Sender.CUSTOMER:
            raise InvalidArgument("only the customer or the owning agent can do this")

    def _record_receipt(self, cmd: c.RecordReceipt) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._check_party(conv, cmd.reader, cmd.agent_id)
        if cmd.status not in ("delivered", "read"):
            raise InvalidArgument("a receipt is delivered or read")
        self._emit(
            ev.ReceiptRecorded(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                reader=cmd.reader,
                message_id=cmd.message_id,
                status=cmd.status,
                agent_id=cmd.agent_id,
                owner=conv.owner,
            )
        )

    def _notify_typing(self, cmd: c.NotifyTyping) -> None:
        conv = self._conversation(cmd.conversation_id)
        if conv.state.is_terminal:
            raise FailedPrecondition(f"conversation {conv.conversation_id!r} is closed")
        self._check_party(conv, cmd.typist, cmd.agent_id)
        self._emit(
            ev.TypingChanged(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                typist=cmd.typist,
                active=cmd.active,
                agent_id=cmd.agent_id,
                owner=conv.owner,
            )
        )

    def _check_new_message(self, channel: str, body: MessageBody) -> None:
        """Refuse a malformed message, or one whose idempotency key was recorded before."""
        if not body.text and not body.attachments:
            raise InvalidArgument("a message needs text or an attachment", field="text")
        if len(body.text) > MAX_MESSAGE_TEXT:
            raise InvalidArgument(f"text is over {MAX_MESSAGE_TEXT} characters", field="text")
        if len(body.attachments) > MAX_ATTACHMENTS:
            raise InvalidArgument(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")
        key = body.provider_message_id
        if key is not None:
            if not key or len(key) > MAX_PROVIDER_ID:
                raise InvalidArgument(
                    f"a provider message id has 1 to {MAX_PROVIDER_ID} characters",
                    field="provider_message_id",
                )
            known = self.message_keys.get((channel, key))
            if known is not None:
                raise Duplicate(
                    "this message was recorded before",
                    message_id=known[0],
                    conversation_id=known[1],
                )

    def _emit_message(
        self, conv: Conversation, sender: Sender, agent_id: str | None, body: MessageBody
    ) -> None:
        self._emit(
            ev.MessageRecorded(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                sender=sender,
                agent_id=agent_id,
                message_id=self.message_seq + 1,
                body=body,
                channel=conv.channel,
                owner=conv.owner,
            )
        )

    def _record_message(self, cmd: c.RecordMessage) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._check_new_message(conv.channel, cmd.message)
        if conv.state.is_terminal:
            raise FailedPrecondition(
                f"conversation {conv.conversation_id!r} is closed",
                conversation_id=conv.conversation_id,
            )
        if cmd.sender is Sender.AGENT:
            if cmd.agent_id is None:
                raise InvalidArgument("an agent message names its agent")
            self._require_state(conv, S.ACTIVE)
            self._require_owner(conv, cmd.agent_id)
        elif cmd.sender is Sender.BOT:
            self._require_state(conv, S.BOT)
        self._emit_message(conv, cmd.sender, cmd.agent_id, cmd.message)
        if cmd.sender is Sender.CUSTOMER and conv.owner is not None:
            owner = self.agents[conv.owner]
            custom = (
                self.settings.custom_status(owner.custom_status) if owner.custom_status else None
            )
            if custom is not None and custom.auto_reply:
                self._say(conv, SystemMessage.AGENT_AUTO_REPLY, text=custom.auto_reply)

    def _customer_left(self, cmd: c.CustomerLeft) -> None:
        conv = self._conversation(cmd.conversation_id)
        self._require_state(conv, S.BOT, S.QUEUED, S.OFFERED, S.ACTIVE)
        if conv.state is S.ACTIVE:
            self._finish(conv, CloseReason.CUSTOMER_LEFT, None)
        elif conv.state is S.BOT:
            self._close_waiting(conv, CloseReason.CUSTOMER_LEFT, None)
        else:
            displaced = self._rescind_offer(conv)
            self._emit(
                ev.ConversationAbandoned(
                    tenant=self.tenant, at=self.clock.now(), conversation_id=conv.conversation_id
                )
            )
            for agent in displaced:
                self._pull(agent)

    def _close_waiting(
        self, conv: Conversation, reason: CloseReason, outcome: Outcome | None, by: str = ""
    ) -> None:
        """Close a conversation nobody owns (bot, queued, offered)."""
        displaced = self._rescind_offer(conv)
        self._emit(
            ev.ConversationEnded(
                tenant=self.tenant,
                at=self.clock.now(),
                conversation_id=conv.conversation_id,
                reason=reason,
                outcome=outcome,
                by=by,
            )
        )
        for agent in displaced:
            self._pull(agent)

    # === routing =================================================================================

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
    ) -> None:
        """Put the conversation in a queue along its plan, minding business hours, and route it."""
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

    # === timers ==================================================================================

    def _fire(self, deadline: float, kind: TimerKind, subject: str) -> None:
        if kind is TimerKind.OFFER:
            offer = self.offers.get(subject)
            if offer is not None and offer.deadline == deadline:
                missed = () if offer.broadcast else offer.agent_ids
                self._decline(offer, DeclineReason.EXPIRED, declined_by=missed, missed_by=missed)
            return
        if kind is TimerKind.TRANSFER:
            found = self.transfers.get(subject)
            if found is not None and found[1].deadline == deadline:
                self._resolve_transfer(found[0], found[1], TransferOutcome.EXPIRED)
            return
        if kind is TimerKind.HOURS:
            self._queue_hours_edge(subject, deadline)
            return
        conv = self.conversations.get(subject)
        if conv is None or conv.deadlines.get(kind) != deadline:
            return
        if kind is TimerKind.STEP:
            self._emit(
                ev.ConversationStepped(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=subject,
                    step=conv.step + 1,
                )
            )
            self._route(conv)
        elif kind is TimerKind.MAX_WAIT:
            self._max_wait(conv)
        elif kind is TimerKind.CUSTOMER_IDLE:
            if conv.reminded:
                self._finish(conv, CloseReason.CUSTOMER_IDLE, None)
            else:
                self._emit(
                    ev.CustomerIdleReminded(
                        tenant=self.tenant, at=self.clock.now(), conversation_id=subject
                    )
                )
                self._say(conv, SystemMessage.IDLE_REMINDER)
        elif kind is TimerKind.AGENT_IDLE:
            owner = self.agents[conv.owner] if conv.owner else None
            assert owner is not None
            self._emit(
                ev.AgentIdleNotified(
                    tenant=self.tenant,
                    at=self.clock.now(),
                    conversation_id=subject,
                    agent_id=owner.agent_id,
                )
            )
            if self.settings.agent_idle_tell_customer:
                self._say(conv, SystemMessage.AGENT_BUSY)
            if self.settings.agent_idle_requeue and conv.queue_id in self.queues:
                assert conv.queue_id is not None
                self._rescind_transfer(conv)
                self._enqueue(
                    conv, conv.queue_id, QueueReason.AGENT_IDLE, exclude=(owner.agent_id,)
                )
                self._pull(owner)
        elif kind is TimerKind.WRAP_UP:
            self._close_wrap_up(conv)
        elif kind is TimerKind.RETENTION:
            self._emit(
                ev.ConversationForgotten(
                    tenant=self.tenant, at=self.clock.now(), conversation_id=subject
                )
            )

    def _max_wait(self, conv: Conversation) -> None:
        assert conv.queue_id is not None
        overflow = self.queues[conv.queue_id].settings.overflow_queue
        displaced = self._rescind_offer(conv)
        if overflow is not None and overflow in self.queues:
            self._enqueue(conv, overflow, QueueReason.OVERFLOW)
        else:
            self._invite_message(conv)
        for agent in displaced:
            self._pull(agent)

    def _queue_hours_edge(self, queue_id: str, deadline: float) -> None:
        queue = self.queues.get(queue_id)
        if queue is None or queue.hours_deadline != deadline:
            return
        now = self.clock.now()
        status = status_at(queue.settings.hours, now)
        self._emit(
            ev.QueueHoursChanged(tenant=self.tenant, at=now, queue_id=queue_id, status=status)
        )
        self._release_held(queue)

    def _release_held(self, queue: QueueRuntime) -> None:
        """Route the conversations a break held, at the step their wait has reached."""
        now = self.clock.now()
        if status_at(queue.settings.hours, now) is HoursStatus.BREAK:
            return
        for conversation_id in list(queue.held):
            conv = self.conversations[conversation_id]
            elapsed = now - conv.plan_started_at
            step = sum(1 for offset in conv.plan_offsets[1:] if offset <= elapsed)
            self._emit(
                ev.ConversationStepped(
                    tenant=self.tenant, at=now, conversation_id=conversation_id, step=step
                )
            )
            self._route(conv)

    # === appliers: the only code that changes state ==============================================

    def _group(self, key: GroupKey) -> Group:
        group = self.groups.get(key)
        if group is None:
            if key.agents is not None:
                candidates = [self.agents[a] for a in sorted(key.agents) if a in self.agents]
            else:
                candidates = list(self.agents.values())
            group = Group(key, [a for a in candidates if key.admits(a.profile)])
            for agent in group.members.values():
                agent.groups.append(group)
            self.groups[key] = group
        return group

    def _ref(self, key: GroupKey) -> None:
        self._group(key).refs += 1

    def _unref(self, key: GroupKey) -> None:
        group = self.groups[key]
        group.refs -= 1
        if group.refs == 0 and not group.waiting_count():
            for agent in group.members.values():
                agent.groups.remove(group)
            del self.groups[key]

    def _reindex(self, agent: Agent) -> None:
        """Index the agent afresh in all its groups. Needed when it may have become available or
        a strategy key improved (room freed, signed in, reconfigured). Keys that only get worse
        (an offer, an assignment) need nothing: the heaps catch up when the stale entry surfaces.
        """
        agent.version += 1
        if agent.available:
            for group in agent.groups:
                group.push(agent)

    def _free(self, agent: Agent, units: int) -> None:
        """Give back ``units`` of the agent's load and index it for the room it gained."""
        was_available = agent.available
        agent.load -= units
        if not was_available:
            self._reindex(agent)  # its entries may have been dropped while it was full
        elif agent.available:
            for group in agent.groups:
                group.push_improved(agent)

    def _list_later(self, conv: Conversation) -> None:
        """List a conversation that just became routable once the command is done with it.
        Most arrivals are offered at once, so listing them first would be wasted work."""
        self._unlisted.append(conv)

    def _flush_listings(self) -> None:
        """List the conversations still waiting; called before anything reads the lists."""
        for conv in self._unlisted:
            if conv.state is S.QUEUED and not conv.held and not conv.listed:
                self._list(conv)
        self._unlisted.clear()

    def _list(self, conv: Conversation) -> None:
        """Make a QUEUED conversation routable: into its group's line and its queue's count."""
        self.groups[conv.group_key].add_waiting(conv)
        self._queue_of(conv).waiting += 1
        conv.listed = True

    def _unlist(self, conv: Conversation) -> None:
        if conv.listed:
            self.groups[conv.group_key].remove_waiting(conv)
            self._queue_of(conv).waiting -= 1
            conv.listed = False

    def _delist(self, conv: Conversation) -> None:
        """Take a QUEUED conversation out of routing: its group and queue order, or the list of
        conversations held by a break."""
        if conv.state is not S.QUEUED:
            return
        if conv.held:
            assert conv.queue_id is not None
            del self.queues[conv.queue_id].held[conv.conversation_id]
            conv.held = False
        else:
            self._unlist(conv)

    def _leave_queue(self, conv: Conversation) -> None:
        """Drop the conversation from whatever queue structure holds it and release its plan."""
        self._delist(conv)
        for key in conv.plan:
            self._unref(key)
        conv.plan = ()
        conv.plan_offsets = ()
        conv.deadlines.pop(TimerKind.STEP, None)
        conv.deadlines.pop(TimerKind.MAX_WAIT, None)

    def _release_owner(self, conv: Conversation) -> None:
        if conv.owner is None:
            return
        agent = self.agents[conv.owner]
        self._free(agent, conv.reserved)
        if conv.override:
            agent.override -= conv.reserved
        agent.conversations.discard(conv.conversation_id)
        conv.owner = None
        conv.override = False
        conv.reserved = 0

    def _own(self, conv: Conversation, agent: Agent, at: float, reserved: int) -> None:
        conv.owner = agent.agent_id
        conv.last_agent = agent.agent_id
        conv.reserved = reserved
        conv.state = S.ACTIVE
        if conv.assigned_at is None:
            conv.assigned_at = at
        agent.conversations.add(conv.conversation_id)
        agent.last_assigned_at = at
        agent.missed_offers = 0
        self.last_served[conv.customer_id] = (agent.agent_id, at)
        for kind in (TimerKind.STEP, TimerKind.MAX_WAIT, TimerKind.CUSTOMER_IDLE):
            conv.deadlines.pop(kind, None)
        idle = self.settings.agent_idle_notify
        self._set_deadline(conv, TimerKind.AGENT_IDLE, at + idle if idle else None)

    def _on_tenant_configured(self, e: ev.TenantConfigured) -> None:
        self.settings = e.settings

    def _on_skill_defined(self, e: ev.SkillDefined) -> None:
        self.skills.add(e.skill)

    def _on_department_defined(self, e: ev.DepartmentDefined) -> None:
        self.departments[e.department] = e.name

    def _on_skill_removed(self, e: ev.SkillRemoved) -> None:
        self.skills.discard(e.skill)

    def _on_department_removed(self, e: ev.DepartmentRemoved) -> None:
        del self.departments[e.department]

    def _on_queue_removed(self, e: ev.QueueRemoved) -> None:
        queue = self.queues.pop(e.queue_id)
        for key in set(queue.plan):
            self._unref(key)
        horizons = [q.settings.sticky_window or 0.0 for q in self.queues.values()]
        self._sticky_horizon = max(horizons, default=0.0)

    def _on_agent_configured(self, e: ev.AgentConfigured) -> None:
        agent = self.agents.get(e.profile.agent_id)
        if agent is None:
            agent = Agent(e.profile, self._next("agent"), e.at)
            self.agents[agent.agent_id] = agent
        agent.reconfigure(e.profile)
        for group in self.groups.values():
            admitted = group.key.admits(e.profile)
            if admitted and agent.agent_id not in group.members:
                group.add_member(agent)
                agent.groups.append(group)
            elif not admitted and agent.agent_id in group.members:
                group.remove_member(agent)
                agent.groups.remove(group)
        self._reindex(agent)

    def _on_agent_removed(self, e: ev.AgentRemoved) -> None:
        agent = self.agents.pop(e.agent_id)
        for group in agent.groups:
            group.remove_member(agent)
        agent.groups.clear()
        agent.version += 1

    def _on_queue_configured(self, e: ev.QueueConfigured) -> None:
        plan, offsets = queue_plan(e.settings)
        queue = self.queues.get(e.settings.queue_id)
        if queue is None:
            queue = QueueRuntime(e.settings, plan, offsets, self.settings.assumed_handle_seconds)
            self.queues[e.settings.queue_id] = queue
        else:
            for key in set(queue.plan):
                self._unref(key)
            queue.settings, queue.plan, queue.offsets = e.settings, plan, offsets
        for key in set(plan):
            self._ref(key)
        self._sticky_horizon = max(q.settings.sticky_window or 0.0 for q in self.queues.values())
        queue.hours_status = status_at(e.settings.hours, e.at)
        self._arm_hours(queue, e.at)

    def _arm_hours(self, queue: QueueRuntime, at: float) -> None:
        queue.hours_deadline = next_change(queue.settings.hours, at)
        if queue.hours_deadline is not None:
            self._arm(TimerKind.HOURS, queue.settings.queue_id, queue.hours_deadline)

    def _on_queue_hours_changed(self, e: ev.QueueHoursChanged) -> None:
        queue = self.queues[e.queue_id]
        queue.hours_status = e.status
        self._arm_hours(queue, e.at)

    def _on_agent_status_changed(self, e: ev.AgentStatusChanged) -> None:
        agent = self.agents[e.agent_id]
        was_online = agent.status is AgentStatus.ONLINE
        is_online = e.status is AgentStatus.ONLINE
        if is_online and not was_online:
            agent.missed_offers = 0
            agent.last_assigned_at = max(agent.last_assigned_at, e.at)
        if is_online != was_online:
            for group in agent.groups:
                group.online += 1 if is_online else -1
        agent.status = e.status
        agent.custom_status = e.custom_status
        agent.status_since = e.at
        agent.last_activity_at = e.at
        self._reindex(agent)

    def _cost_of(self, channel: str) -> int:
        """What a conversation on ``channel`` costs an agent's capacity."""
        if channel in self.settings.exclusive_channels:
            return EXCLUSIVE
        return to_units(self.settings.channel_weights.get(channel, 1.0))

    def _on_started(self, e: ev.ConversationStarted) -> None:
        self.conversations[e.conversation_id] = Conversation(
            e.conversation_id,
            self._next("conversation"),
            e.channel,
            self._cost_of(e.channel),
            e.customer_id,
            e.region,
            e.language,
            e.priority,
            e.tags,
            e.at,
        )
        self.conversations[e.conversation_id].queue_id = e.queue_id
        self.conversations[e.conversation_id].customer = e.customer
        self.open_conversations[e.customer_id, e.channel] = e.conversation_id

    def _on_queued(self, e: ev.ConversationQueued) -> None:
        conv = self.conversations[e.conversation_id]
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

    def _on_offer_made(self, e: ev.OfferMade) -> None:
        conv = self.conversations[e.conversation_id]
        self._delist(conv)
        conv.state = S.OFFERED
        conv.offer = e.offer_id
        self._next("offer")
        rotation = self._next("rotation")
        offer = Offer(e.offer_id, e.conversation_id, e.agent_ids, e.deadline, e.broadcast)
        self.offers[e.offer_id] = offer
        for agent_id in e.agent_ids:
            agent = self.agents[agent_id]
            agent.offers.add(e.offer_id)
            agent.last_offered = rotation
            if not e.broadcast:
                conv.reserved = agent.cost_of(conv.cost)
                agent.load += conv.reserved
        conv.decisions.append(e.decision)
        del conv.decisions[:-KEPT_DECISIONS]
        self._arm(TimerKind.OFFER, e.offer_id, e.deadline)

    def _drop_offer(self, offer: Offer, conv: Conversation) -> list[Agent]:
        del self.offers[offer.offer_id]
        conv.offer = None
        recipients = [self.agents[a] for a in offer.agent_ids]
        for agent in recipients:
            agent.offers.discard(offer.offer_id)
        return recipients

    def _on_offer_accepted(self, e: ev.OfferAccepted) -> None:
        conv = self.conversations[e.conversation_id]
        offer = self.offers[e.offer_id]
        self._drop_offer(offer, conv)
        agent = self.agents[e.agent_id]
        if offer.broadcast:
            conv.reserved = agent.cost_of(conv.cost)
            agent.load += conv.reserved
        self._own(conv, agent, e.at, conv.reserved)

    def _on_offer_declined(self, e: ev.OfferDeclined) -> None:
        conv = self.conversations[e.conversation_id]
        offer = self.offers[e.offer_id]
        for agent in self._drop_offer(offer, conv):
            if agent.agent_id in e.missed_by:
                agent.missed_offers += 1
            if not offer.broadcast:
                self._free(agent, conv.reserved)
        conv.reserved = 0
        conv.declined.update(e.declined_by)
        conv.state = S.QUEUED
        self._list_later(conv)

    def _on_assigned(self, e: ev.ConversationAssigned) -> None:
        conv = self.conversations[e.conversation_id]
        agent = self.agents[e.agent_id]
        self._delist(conv)
        self._release_owner(conv)
        reserved = agent.cost_of(conv.cost)
        agent.load += reserved
        if e.override_capacity:
            conv.override = True
            agent.override += reserved
        self._own(conv, agent, e.at, reserved)

    def _on_message(self, e: ev.MessageRecorded) -> None:
        conv = self.conversations[e.conversation_id]
        s = self.settings
        live = conv.state is S.ACTIVE
        if e.sender is Sender.AGENT:
            if conv.first_response_at is None:
                conv.first_response_at = e.at
            self.agents[e.agent_id or ""].last_activity_at = e.at
            self._set_deadline(conv, TimerKind.AGENT_IDLE, None)
            if conv.last_sender != Sender.AGENT or TimerKind.CUSTOMER_IDLE not in conv.deadlines:
                # Idle time counts from the first agent message the customer has not answered.
                remind = s.customer_idle_remind
                conv.reminded = False
                self._set_deadline(
                    conv, TimerKind.CUSTOMER_IDLE, e.at + remind if remind and live else None
                )
        elif e.sender is Sender.CUSTOMER:
            conv.reminded = False
            self._set_deadline(conv, TimerKind.CUSTOMER_IDLE, None)
            if conv.last_sender != Sender.CUSTOMER or TimerKind.AGENT_IDLE not in conv.deadlines:
                notify = s.agent_idle_notify
                self._set_deadline(
                    conv, TimerKind.AGENT_IDLE, e.at + notify if notify and live else None
                )
        conv.last_sender = e.sender
        self.message_seq = max(self.message_seq, e.message_id)
        key = e.body.provider_message_id
        if key is not None:
            self.message_keys[conv.channel, key] = (e.message_id, conv.conversation_id)
            conv.message_keys.append((conv.channel, key))
        if e.sender is Sender.CUSTOMER and not conv.preview:
            conv.preview = e.body.text[:PREVIEW_LENGTH]

    def _on_other_side_only(self, e: ev.Event) -> None:
        pass  # for the transcript and the other side's screen, not for routing

    def _on_system_message(self, e: ev.SystemMessageSent) -> None:
        self.message_seq = max(self.message_seq, e.message_id)

    def _on_customer_idle_reminded(self, e: ev.CustomerIdleReminded) -> None:
        conv = self.conversations[e.conversation_id]
        conv.reminded = True
        close = self.settings.customer_idle_close
        self._set_deadline(conv, TimerKind.CUSTOMER_IDLE, e.at + close if close else None)

    def _on_agent_idle_notified(self, e: ev.AgentIdleNotified) -> None:
        self.conversations[e.conversation_id].deadlines.pop(TimerKind.AGENT_IDLE, None)

    def _on_ended(self, e: ev.ConversationEnded) -> None:
        conv = self.conversations[e.conversation_id]
        if conv.state is S.ACTIVE and conv.assigned_at is not None and conv.queue_id:
            queue = self.queues.get(conv.queue_id)
            if queue is not None:
                handled = e.at - conv.assigned_at
                queue.avg_handle_seconds += HANDLE_TIME_SMOOTHING * (
                    handled - queue.avg_handle_seconds
                )
        self._leave_queue(conv)
        conv.deadlines.clear()
        if conv.owner is not None:
            self.last_served[conv.customer_id] = (conv.owner, e.at)
        conv.ended_at = e.at
        conv.outcome = e.outcome
        conv.close_reason = e.reason
        conv.reminded = False
        self._over(conv)
        if e.wrap_up_until is not None:
            conv.state = S.WRAP_UP
            self._set_deadline(conv, TimerKind.WRAP_UP, e.wrap_up_until)
        else:
            self._release_owner(conv)
            self._terminate(conv, S.CLOSED, e.at)

    def _on_wrap_up_finished(self, e: ev.WrapUpFinished) -> None:
        conv = self.conversations[e.conversation_id]
        conv.deadlines.clear()
        self._release_owner(conv)
        self._terminate(conv, S.CLOSED, e.at)

    def _on_abandoned(self, e: ev.ConversationAbandoned) -> None:
        conv = self.conversations[e.conversation_id]
        self._leave_queue(conv)
        conv.deadlines.clear()
        self._terminate(conv, S.ABANDONED, e.at)

    def _over(self, conv: Conversation) -> None:
        """The customer's next message starts a new conversation."""
        key = (conv.customer_id, conv.channel)
        if self.open_conversations.get(key) == conv.conversation_id:
            del self.open_conversations[key]

    def _terminate(self, conv: Conversation, state: ConversationState, at: float) -> None:
        self._over(conv)
        conv.state = state
        conv.closed_at = at
        retention = self.settings.closed_retention_seconds
        self._set_deadline(conv, TimerKind.RETENTION, at + retention)

    def _on_forgotten(self, e: ev.ConversationForgotten) -> None:
        conv = self.conversations.pop(e.conversation_id)
        for key in conv.message_keys:
            self.message_keys.pop(key, None)
        served = self.last_served.get(conv.customer_id)
        if served is not None and e.at - served[1] > self._sticky_horizon:
            del self.last_served[conv.customer_id]

    def _on_returned_to_bot(self, e: ev.ConversationReturnedToBot) -> None:
        conv = self.conversations[e.conversation_id]
        self._leave_queue(conv)
        self._release_owner(conv)
        conv.deadlines.clear()
        conv.state = S.BOT

    def _on_monitor_changed(self, e: ev.MonitorChanged) -> None:
        monitors = self.conversations[e.conversation_id].monitors
        if e.monitoring:
            monitors.add(e.supervisor_id)
        else:
            monitors.discard(e.supervisor_id)

    def _on_tags_changed(self, e: ev.TagsChanged) -> None:
        self.conversations[e.conversation_id].tags = e.tags

    def _on_transfer_requested(self, e: ev.TransferRequested) -> None:
        conv = self.conversations[e.conversation_id]
        target = self.agents[e.to_agent]
        record = TransferRecord(
            e.transfer_id, e.from_agent, TransferTarget.AGENT, e.to_agent, e.note, e.at, e.deadline
        )
        record.reserved = target.cost_of(conv.cost)
        self._next("transfer")
        conv.transfer = e.transfer_id
        conv.transfers.append(record)
        self.transfers[e.transfer_id] = (conv, record)
        target.load += record.reserved
        target.transfers_in.add(e.transfer_id)
        self._arm(TimerKind.TRANSFER, e.transfer_id, e.deadline)

    def _on_transfer_resolved(self, e: ev.TransferResolved) -> None:
        conv, record = self.transfers.pop(e.transfer_id)
        target = self.agents[record.target_id]
        record.outcome = e.outcome
        record.resolved_at = e.at
        conv.transfer = None
        target.transfers_in.discard(e.transfer_id)
        if e.outcome is TransferOutcome.ACCEPTED:
            # The reservation becomes the new owner's load. The plan now names the new owner:
            # the sender chose them, so the queue's skill steps no longer apply.
            self._release_owner(conv)
            for key in conv.plan:
                self._unref(key)
            conv.plan = (GroupKey(agents=frozenset({target.agent_id})),)
            conv.plan_offsets = (0.0,)
            conv.step = 0
            self._ref(conv.plan[0])
            self._own(conv, target, e.at, record.reserved)
        else:
            self._free(target, record.reserved)

    def _on_transferred(self, e: ev.ConversationTransferred) -> None:
        conv = self.conversations[e.conversation_id]
        record = TransferRecord(
            e.transfer_id, e.from_agent, e.target, e.target_id, e.note, e.at, None
        )
        record.outcome = TransferOutcome.ACCEPTED
        record.resolved_at = e.at
        self._next("transfer")
        conv.transfers.append(record)


def queue_plan(s: QueueSettings) -> tuple[tuple[GroupKey, ...], tuple[float, ...]]:
    """A queue's eligibility group per step: its requirements and designations, then each
    relaxation step (lowered levels, or any agent of the tenant)."""
    requirements = frozenset((r.skill, r.min_level) for r in s.requirements)
    agents = s.designated_agents or None
    departments = s.designated_departments or None
    steps: list[tuple[float, GroupKey]] = [(0.0, GroupKey(requirements, agents, departments))]
    for step in s.relaxation:
        if step.any_agent:
            key = GroupKey()
        else:
            lowered = frozenset(
                (skill, max(MIN_SKILL_LEVEL, level - step.level_drop))
                for skill, level in requirements
            )
            key = GroupKey(lowered, agents, departments)
        steps.append((step.after_seconds, key))
    return _squash(steps)


def relaxed_key(s: QueueSettings) -> GroupKey:
    """The group of the relaxed skill mode by presence: the queue's designations, no skills."""
    return GroupKey(
        agents=s.designated_agents or None, departments=s.designated_departments or None
    )


def eligibility_keys(s: QueueSettings) -> tuple[GroupKey, ...]:
    """Every group a queue's conversations may be offered to: its timed steps, and the relaxed
    group by presence when the queue has that option."""
    keys, _ = queue_plan(s)
    return (*keys, relaxed_key(s)) if s.relax_when_none_online else keys


def _steps(queue: QueueRuntime) -> list[tuple[float, GroupKey]]:
    return list(zip(queue.offsets, queue.plan, strict=True))


def _squash(
    steps: list[tuple[float, GroupKey]],
) -> tuple[tuple[GroupKey, ...], tuple[float, ...]]:
    """Drop steps that change nothing; a step starting no later than the one before replaces it."""
    plan: list[GroupKey] = []
    offsets: list[float] = []
    for offset, key in steps:
        if plan and plan[-1] == key:
            continue
        if offsets and offset <= offsets[-1]:
            plan[-1] = key
            continue
        plan.append(key)
        offsets.append(offset)
    return tuple(plan), tuple(offsets)
