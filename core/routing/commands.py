"""Commands: what callers ask the engine to do. Each is validated whole before anything changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.routing.model import (
    AgentProfile,
    AgentStatus,
    CustomerCard,
    CustomerProfile,
    MessageBody,
    Mode,
    Outcome,
    QueueSettings,
    Sender,
    TenantSettings,
    TransferTarget,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    tenant: str


# --- administration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureTenant(Command):
    """Create the tenant, or replace its settings."""

    settings: TenantSettings = field(default_factory=TenantSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class DefineSkill(Command):
    skill: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DefineDepartment(Command):
    department: str
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveSkill(Command):
    """Refused while an agent has the skill or a queue requires it."""

    skill: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveDepartment(Command):
    """Refused while an agent belongs to it or a queue designates it."""

    department: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveQueue(Command):
    """Refused while a conversation that is not over is in it, or the tenant's settings or
    another queue's overflow point to it."""

    queue_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureAgent(Command):
    """Create the agent (signed out), or replace its profile."""

    profile: AgentProfile


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveAgent(Command):
    """Remove a signed-out agent who holds no conversations."""

    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigureQueue(Command):
    """Create the queue, or replace its settings (waiting conversations keep their plan)."""

    settings: QueueSettings


# --- agents -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SetAgentStatus(Command):
    """Sign in (online), step away, take a break, sign out, or enter a custom status.

    With a custom status, ``status`` may be None: the custom status's base is used; a status
    given must equal that base. Signing out while owning active conversations follows the
    tenant's ``sign_out_with_conversations``."""

    agent_id: str
    status: AgentStatus | None
    custom_status: str | None = None
    client_address: str = ""
    """Where the agent's call came from, as the front door saw it (for the login log)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptOffer(Command):
    offer_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectOffer(Command):
    offer_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TakeConversation(Command):
    """The agent takes a waiting conversation from a queue ("take chat")."""

    agent_id: str
    conversation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndConversation(Command):
    agent_id: str
    conversation_id: str
    outcome: Outcome = Outcome.RESOLVED


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishWrapUp(Command):
    agent_id: str
    conversation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestTransfer(Command):
    """Hand a conversation the agent owns to another agent, a queue or a department."""

    agent_id: str
    conversation_id: str
    target: TransferTarget
    target_id: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerTransfer(Command):
    agent_id: str
    transfer_id: str
    accept: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelTransfer(Command):
    agent_id: str
    transfer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetMode(Command):
    """HKT console modes: AUTO hands back to the bot, SILENT monitors (and stops the bot),
    LIVE takes the conversation, END ends it as resolved."""

    agent_id: str
    conversation_id: str
    mode: Mode


@dataclass(frozen=True, slots=True, kw_only=True)
class TagConversation(Command):
    conversation_id: str
    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()


# --- supervisors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ForceAssign(Command):
    """A supervisor assigns a conversation to an agent; ``override_capacity`` is recorded."""

    supervisor_id: str
    conversation_id: str
    agent_id: str
    override_capacity: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Monitor(Command):
    """Start (or with ``stop``, end) silent monitoring of a live conversation."""

    supervisor_id: str
    conversation_id: str
    stop: bool = False


# --- conversations (gateways) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StartConversation(Command):
    """A customer starts a conversation: with a bot (``with_bot``) or straight into a queue."""

    conversation_id: str
    channel: str
    customer_id: str
    queue_id: str | None = None
    """None picks the tenant's region rule, then its default queue."""
    region: str = ""
    language: str = ""
    priority: int = 0
    tags: frozenset[str] = frozenset()
    with_bot: bool = False
    customer: CustomerCard = field(default_factory=CustomerCard)
    """How consoles and gateways show the customer (the id is ``customer_id``)."""
    first_message: MessageBody | None = None
    """The customer's first message, recorded in the same command: both or neither."""
    reference: str = ""
    """The QR code's or campaign link's reference the customer came from (bots' triggers)."""
    page: str = ""
    """The web page the customer wrote from, and its referrer (visitor reports; empty: none)."""
    referrer: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiveMessage(Command):
    """A customer wrote on a channel: the message goes to their open conversation there, or
    starts conversation ``conversation_id`` with the options below (as ``StartConversation``).
    A message whose ``provider_message_id`` was recorded before raises ``Duplicate``."""

    conversation_id: str
    channel: str
    customer_id: str
    message: MessageBody
    customer: CustomerCard = field(default_factory=CustomerCard)
    queue_id: str | None = None
    region: str = ""
    language: str = ""
    priority: int = 0
    tags: frozenset[str] = frozenset()
    with_bot: bool = False
    reference: str = ""
    """As ``StartConversation.reference``, for a conversation this message starts."""
    page: str = ""
    """As ``StartConversation.page`` and ``referrer``, for a conversation this message starts."""
    referrer: str = ""
    require_profile: bool = False
    """Refuse with ``ProfileNeeded`` (nothing changes) when the message would start a
    conversation and ``customer`` has no profile: the door reads the profile then, and only
    then, and submits again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAgent(Command):
    """The bot hands the conversation to a human (or a closed one is reopened)."""

    conversation_id: str
    queue_id: str | None = None
    priority: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordMessage(Command):
    """A message in a conversation: stored with its event, and it drives idle timers, first
    response time and auto-replies. A ``provider_message_id`` recorded before raises
    ``Duplicate``."""

    conversation_id: str
    sender: Sender
    agent_id: str | None = None
    message: MessageBody = field(default_factory=MessageBody)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReceipt(Command):
    """The customer (``reader`` CUSTOMER) or the owning agent received or read the messages up
    to ``message_id``; ``status`` is ``delivered`` or ``read``. Late receipts are fine."""

    conversation_id: str
    reader: Sender
    message_id: int
    status: str
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyTyping(Command):
    """The customer or the owning agent started (``active``) or stopped typing."""

    conversation_id: str
    typist: Sender
    active: bool
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerLeft(Command):
    conversation_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RateConversation(Command):
    """The customer's satisfaction rating (``score`` 1-5, an optional ``comment``), once per
    conversation, from its end until ``RATING_WINDOW`` later. The same rating again changes
    nothing; another is refused (``AlreadyExists``). A conversation the engine has forgotten
    is rated from what the store recorded (``ended_at``, ``channel``, ``queue_id``,
    ``agent_id``, ``tags``: the front door reads them); one it holds, from its own state."""

    conversation_id: str
    score: int
    comment: str = ""
    ended_at: float | None = None
    channel: str = ""
    queue_id: str = ""
    agent_id: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReopenConversation(Command):
    """Reopen a closed or abandoned conversation into a queue (sticky to its last agent)."""

    conversation_id: str
    queue_id: str | None = None
    profile: CustomerProfile | None = None
    """The customer's profile now (None: the one it had)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenForAgent(Command):
    """An agent takes up a customer (a left message answered, an agent-started conversation):
    conversation ``conversation_id`` is reopened if it is closed or abandoned, or started with
    ``channel``, ``customer_id`` and the card if it does not exist (naming none of them, it
    raises ``NotFound``), and is owned by ``agent_id`` at once, offered to no one, whatever its
    queue's hours. The agent must be online, have room, and meet a step
    of the queue (``queue_id``; None: the conversation's own, else the tenant's rules). ``by``
    is who asked (the agent, or a supervisor)."""

    conversation_id: str
    agent_id: str
    by: str
    channel: str = ""
    customer_id: str = ""
    queue_id: str | None = None
    region: str = ""
    language: str = ""
    tags: frozenset[str] = frozenset()
    customer: CustomerCard = field(default_factory=CustomerCard)
    """The card of a conversation it starts; a reopened one keeps its own, with the
    ``profile`` of this card if it has one."""


# --- customers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshCustomerProfile(Command):
    """The customer's record changed (details, fields, tags, groups, a merge, a block): each
    conversation of ``customer_id`` that is not over shows ``profile`` from now on, and the
    agents who see it are told (``CustomerProfileChanged``). Nothing happens when they have
    none, or when a conversation shows this very profile already."""

    customer_id: str
    profile: CustomerProfile


# --- bots -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishBot(Command):
    """Serve a bot version (``core.bots.codec.bot_to_json``; status active or paused), replacing
    the version held: conversations in flight keep theirs. Publishing what is held already
    changes nothing."""

    bot: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseBot(Command):
    """No trigger starts the bot any more; flows in flight go on. Nothing happens when the bot
    is not held or is paused already."""

    bot_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveBot(Command):
    """Forget the bot (flows in flight keep their version). Nothing happens when it is not held."""

    bot_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerBotEffect(Command):
    """The runtime's answer to ``BotEffectRequested`` ``effect`` of the conversation's flow: a
    webhook's (``text``, ``next_step``) or a knowledge search's (``text`` the answer,
    ``confident``, ``article``); ``ok`` false for a failure or a timeout. An answer the flow
    does not await (late, repeated) changes nothing."""

    conversation_id: str
    effect: int
    ok: bool
    text: str = ""
    next_step: str = ""
    confident: bool = False
    article: str = ""
