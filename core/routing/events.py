"""Events: what happened. The engine changes state only by applying events, so replaying a
tenant's events in order into an empty engine rebuilds it exactly (invariant 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.bots.flow import FieldValue
from core.bots.interpreter import BotState, KnowledgeSearch, WebhookCall
from core.routing.explain import Decision
from core.routing.hours import HoursStatus
from core.routing.model import (
    AgentProfile,
    AgentStatus,
    CloseReason,
    CustomerCard,
    CustomerProfile,
    DeclineReason,
    HandOffCard,
    MessageBody,
    Outcome,
    QueueReason,
    QueueSettings,
    Sender,
    SystemMessage,
    TenantSettings,
    TransferOutcome,
    TransferTarget,
)
from core.routing.pools import GroupKey


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    tenant: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantConfigured(Event):
    settings: TenantSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class SkillDefined(Event):
    skill: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepartmentDefined(Event):
    department: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SkillRemoved(Event):
    skill: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DepartmentRemoved(Event):
    department: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRemoved(Event):
    queue_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfigured(Event):
    profile: AgentProfile


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRemoved(Event):
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfigured(Event):
    settings: QueueSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueHoursChanged(Event):
    """A business-hours edge passed: the queue opened, went on a break or closed."""

    queue_id: str
    status: HoursStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatusChanged(Event):
    agent_id: str
    status: AgentStatus
    custom_status: str | None = None
    reason: str = "agent"
    """``agent``, or ``missed_offers`` when the engine set the agent away."""
    client_address: str = ""
    """The address the agent's call came from (empty for changes the engine made)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationStarted(Event):
    conversation_id: str
    channel: str
    customer_id: str
    region: str
    language: str
    priority: int
    tags: frozenset[str]
    with_bot: bool
    queue_id: str | None
    """The queue it will wait in when it asks for an agent (None: decided then)."""
    customer: CustomerCard = field(default_factory=CustomerCard)
    reference: str = ""
    """The QR code's or campaign link's reference it was opened with (empty: none)."""
    page: str = ""
    """The web page the customer wrote from, and its referrer (empty: none); carried for
    reports only, not kept in the engine's state."""
    referrer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationQueued(Event):
    """The conversation waits in ``queue_id`` along ``plan``: one eligibility group per step,
    entered at ``enqueued_at + offsets[i]``. ``held`` defers routing until a break ends."""

    conversation_id: str
    queue_id: str
    reason: QueueReason
    priority: int
    """The conversation's own priority; the queue's is added when scoring."""
    enqueued_at: float
    plan: tuple[GroupKey, ...]
    offsets: tuple[float, ...]
    max_wait_at: float | None
    held: bool = False
    exclude: tuple[str, ...] = ()
    """Agents not to be offered it at its first step (the agent who transferred it away)."""
    previous_owner: str | None = None
    """The agent it was taken from, if it had an owner."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationStepped(Event):
    """The conversation moved to another step of its plan (relaxation, sticky timeout, or the
    end of a break that held it)."""

    conversation_id: str
    step: int
    relaxed: bool = False
    """The relaxed skill mode by presence: no agent meeting the queue's skills is online, so
    from ``step`` on the plan is the queue's designations with no skills (see
    ``QueueSettings.relax_when_none_online``). Absent in events older than the option."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferMade(Event):
    """Carries what an agent's console shows for the offer: the channel, the customer, the
    queue and the first message's preview."""

    offer_id: str
    conversation_id: str
    agent_ids: tuple[str, ...]
    deadline: float
    broadcast: bool
    decision: Decision
    channel: str = ""
    queue_id: str = ""
    customer: CustomerCard = field(default_factory=CustomerCard)
    preview: str = ""
    hand_off: HandOffCard | None = None
    """How a bot last handed the conversation to people, if one did."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferAccepted(Event):
    offer_id: str
    conversation_id: str
    agent_id: str
    agent_ids: tuple[str, ...] = ()
    """The offer's recipients (the others see it rescinded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferDeclined(Event):
    """The offer ended without an owner; the conversation waits again in its queue."""

    offer_id: str
    conversation_id: str
    reason: DeclineReason
    agent_ids: tuple[str, ...] = ()
    """The offer's recipients (for their event streams)."""
    missed_by: tuple[str, ...] = ()
    """Agents charged with a missed offer (expiry of a directed offer)."""
    declined_by: tuple[str, ...] = ()
    """Agents not to be offered this conversation again at its current step."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAssigned(Event):
    """An agent became owner without an offer: manual take, force-assign, LIVE mode."""

    conversation_id: str
    agent_id: str
    via: str
    by: str
    override_capacity: bool = False
    previous_owner: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecorded(Event):
    """A message, stored with this event (``message_id`` is unique in the tenant). ``owner``
    is the conversation's owner when it was recorded (whose console shows it)."""

    conversation_id: str
    sender: Sender
    agent_id: str | None = None
    message_id: int = 0
    body: MessageBody = field(default_factory=MessageBody)
    channel: str = ""
    owner: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemMessageSent(Event):
    """Usher told the customer something (welcome, waiting position, ...). ``text`` is rendered
    in ``language``. An event, not an effect, so that it is stored, replayed to a resuming
    gateway, and part of the transcript; applying it changes no routing state."""

    conversation_id: str
    kind: SystemMessage
    language: str
    text: str
    message_id: int = 0
    channel: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptRecorded(Event):
    """Messages up to ``message_id`` reached (``delivered``) or were ``read`` by ``reader``.
    For the other side's view only: applying it changes no routing state."""

    conversation_id: str
    reader: Sender
    message_id: int
    status: str
    agent_id: str | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingChanged(Event):
    """``typist`` started or stopped typing; for the other side's view only."""

    conversation_id: str
    typist: Sender
    active: bool
    agent_id: str | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerIdleReminded(Event):
    conversation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentIdleNotified(Event):
    conversation_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationEnded(Event):
    """Owner released; WRAP_UP until ``wrap_up_until`` if set (capacity still held), else
    CLOSED. From a waiting state with ``LEFT_MESSAGE`` or ``CUSTOMER_LEFT`` it closes too."""

    conversation_id: str
    reason: CloseReason
    outcome: Outcome | None
    by: str = ""
    wrap_up_until: float | None = None
    agent_id: str | None = None
    """The owner when it ended (None: nobody owned it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WrapUpFinished(Event):
    conversation_id: str
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationAbandoned(Event):
    """The customer left while waiting."""

    conversation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationRated(Event):
    """The customer rated the conversation (once; within ``RATING_WINDOW`` of its end). It
    carries the conversation's queue, channel, tags and last agent when it ended, so reports
    count the rating wherever the conversation was, even long after the engine forgot it."""

    conversation_id: str
    score: int
    comment: str = ""
    channel: str = ""
    queue_id: str = ""
    agent_id: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationForgotten(Event):
    """A closed conversation left memory after the tenant's retention (it stays in the store)."""

    conversation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationReturnedToBot(Event):
    conversation_id: str
    by: str
    previous_owner: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorChanged(Event):
    conversation_id: str
    supervisor_id: str
    monitoring: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TagsChanged(Event):
    conversation_id: str
    tags: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRequested(Event):
    """A transfer to an agent; the target's capacity is reserved until it is answered."""

    transfer_id: str
    conversation_id: str
    from_agent: str
    to_agent: str
    note: str
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferResolved(Event):
    """Carries the transfer whole, as both agents' consoles show it."""

    transfer_id: str
    conversation_id: str
    outcome: TransferOutcome
    from_agent: str = ""
    to_agent: str = ""
    note: str = ""
    requested_at: float = 0.0
    deadline: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationTransferred(Event):
    """Moved from its owner to a queue or department: the owner is released, then a
    ``ConversationQueued`` follows."""

    transfer_id: str
    conversation_id: str
    from_agent: str
    target: TransferTarget
    target_id: str
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerProfileChanged(Event):
    """Conversation ``conversation_id`` shows the customer's ``profile`` from now on (their
    record changed, or the conversation reopened). ``agent_ids`` are the agents whose consoles
    show the conversation: its owner, the recipients of its live offer, the target of its
    pending transfer."""

    conversation_id: str
    customer_id: str
    profile: CustomerProfile
    agent_ids: tuple[str, ...] = ()


# --- bots ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BotPublished(Event):
    """A bot version is served (``core.bots.codec.bot_to_json``: active or paused)."""

    bot: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BotPaused(Event):
    bot_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BotRemoved(Event):
    bot_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BotTurned(Event):
    """One turn of a bot's flow in a conversation: where the flow is now (``state``), what the
    turn wrote to the customer's record, and the effect it waits for, if any. The turn's
    replies follow as ``MessageRecorded`` events (sender BOT); a hand-off or an end as
    ``BotHandedOff`` / ``BotEnded``. ``run`` counts the flows started in the conversation;
    ``trigger`` is set on a run's first turn (``new_conversation``, ``phrase``, ``reference``,
    ``out_of_hours``, ``keyword``, ``returned``)."""

    conversation_id: str
    customer_id: str
    bot_id: str
    version: int
    run: int
    state: BotState
    trigger: str = ""
    webhook: WebhookCall | None = None
    knowledge: KnowledgeSearch | None = None
    fields: tuple[tuple[str, FieldValue], ...] = ()
    """Customer field values the turn set (collected answers, set-field actions)."""
    tags_added: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BotHandedOff(Event):
    """The flow handed the conversation to people (a ``ConversationQueued`` follows when it was
    with the bot; one waiting already keeps its place): ``reason`` is ``bot_handoff`` or
    ``bot_could_not_answer``; ``fields`` are what the flow collected."""

    conversation_id: str
    bot_id: str
    version: int
    run: int
    reason: str
    queue_id: str = ""
    skills: tuple[tuple[str, int], ...] = ()
    priority: int = 0
    fields: tuple[tuple[str, FieldValue], ...] = ()
    agent_ids: tuple[str, ...] = ()
    """The agents whose consoles show the conversation then (a flow that ran while it was
    offered): they are shown the hand-off."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BotEnded(Event):
    """The flow ended; with ``closed`` the conversation closes as resolved by the bot (a
    ``ConversationEnded`` with reason ``bot_resolved`` follows)."""

    conversation_id: str
    bot_id: str
    version: int
    run: int
    closed: bool = False
