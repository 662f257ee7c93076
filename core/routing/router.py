"""One tenant's routing: command handlers that decide, and ``_apply`` that changes state.

Every handler first validates the whole command (raising a ``RoutingError`` before anything
changes), then emits events. ``_emit`` applies each event at once, so later decisions in the same
command see its effect, and replaying the events elsewhere rebuilds the same state.

This module holds construction, the entry points (``execute``, ``tick``, ``apply``), emitting and
the lookups and checks every handler shares. The handlers and appliers live by concern in
``core.routing.router_parts``: ``config`` (tenant, skills, departments, agents, queues),
``agents`` (status and presence), ``offers`` (offers, assignment, ending, wrap-up), ``transfers``,
``modes`` (modes, tags, monitoring), ``messages`` (opening, messages, receipts, typing),
``customers`` (customers' profiles on their conversations), ``bots`` (published bots,
triggers and the flows running in conversations),
``queueing`` (enqueue and routing), ``timers`` (what a timer firing does), ``bookkeeping`` (the
appliers' index upkeep) and ``plans`` (queue relaxation plans); ``base`` types what they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from core.bots.flow import Bot
from core.routing import commands as c
from core.routing import events as ev
from core.routing.clock import Clock
from core.routing.effects import ArmTimer, Effect
from core.routing.errors import (
    CapacityExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from core.routing.model import (
    MAX_SKILL_LEVEL,
    MIN_SKILL_LEVEL,
    AgentStatus,
    ConversationState,
    SystemMessage,
    TenantSettings,
)
from core.routing.pools import Group, GroupKey
from core.routing.router_parts.agents import AgentsMixin
from core.routing.router_parts.bookkeeping import BookkeepingMixin
from core.routing.router_parts.bots import BotsMixin
from core.routing.router_parts.config import ConfigMixin
from core.routing.router_parts.customers import CustomersMixin
from core.routing.router_parts.messages import MessagesMixin
from core.routing.router_parts.modes import ModesMixin
from core.routing.router_parts.offers import OffersMixin
from core.routing.router_parts.plans import (
    eligibility_keys,
)
from core.routing.router_parts.queueing import QueueingMixin
from core.routing.router_parts.ratings import RatingsMixin
from core.routing.router_parts.timers import TimersMixin
from core.routing.router_parts.transfers import TransfersMixin
from core.routing.state import (
    UNIT,
    Agent,
    Conversation,
    Offer,
    QueueRuntime,
    TransferRecord,
)
from core.routing.timers import TimerHeap, TimerKind

__all__ = ["Router", "eligibility_keys"]


class _NoClock:
    def now(self) -> float:
        raise RuntimeError("a restored router needs a clock: set router.clock first")


class Router(
    ConfigMixin,
    AgentsMixin,
    OffersMixin,
    TransfersMixin,
    ModesMixin,
    MessagesMixin,
    CustomersMixin,
    QueueingMixin,
    TimersMixin,
    BookkeepingMixin,
    BotsMixin,
    RatingsMixin,
):
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
        self.customer_conversations: dict[str, set[str]] = {}
        """Customer -> their conversations in memory (for ``RefreshCustomerProfile``)."""
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
        self.bots: dict[str, Bot] = {}
        """The bots served (active or paused), each at its published version."""
        self.ratings: dict[str, tuple[int, str, float]] = {}
        """Conversation -> (score, comment, when) of the ratings given, oldest first, kept while
        a repeat could come (``core.routing.router_parts.ratings``)."""
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
            c.RefreshCustomerProfile: self._refresh_profile,
            c.PublishBot: self._publish_bot,
            c.PauseBot: self._pause_bot,
            c.RemoveBot: self._remove_bot,
            c.AnswerBotEffect: self._answer_bot_effect,
            c.RateConversation: self._rate,
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
            ev.CustomerProfileChanged: self._on_profile_changed,
            ev.BotPublished: self._on_bot_published,
            ev.BotPaused: self._on_bot_paused,
            ev.BotRemoved: self._on_bot_removed,
            ev.BotTurned: self._on_bot_turned,
            ev.BotHandedOff: self._on_bot_flow_over,
            ev.BotEnded: self._on_bot_flow_over,
            ev.ConversationRated: self._on_rated,
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
        self.__dict__.setdefault("ratings", {})  # a snapshot from before ratings
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
