"""Configuration values and enumerations of the routing domain.

Everything here is an immutable value: tenants, agents and queues are configured by replacing
their settings whole (``ConfigureTenant``, ``ConfigureAgent``, ``ConfigureQueue``).
Mappings inside frozen values are treated as read-only by convention.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from core.bots.flow import FieldValue

MIN_SKILL_LEVEL = 1
MAX_SKILL_LEVEL = 10


class AgentStatus(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    BREAK = "break"
    OFFLINE = "offline"


class ConversationState(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    OFFERED = "offered"
    ACTIVE = "active"
    WRAP_UP = "wrap_up"
    CLOSED = "closed"
    ABANDONED = "abandoned"

    @property
    def is_terminal(self) -> bool:
        return self in (ConversationState.CLOSED, ConversationState.ABANDONED)

    @property
    def is_waiting(self) -> bool:
        return self in (ConversationState.QUEUED, ConversationState.OFFERED)


class Strategy(StrEnum):
    LONGEST_IDLE = "longest_idle"
    """The agent whose last assignment is oldest."""
    LEAST_BUSY = "least_busy"
    """The agent with the largest share of free capacity."""
    ROUND_ROBIN = "round_robin"
    """The agent who was offered work longest ago."""
    BROADCAST = "broadcast"
    """Every eligible agent sees the conversation; the first to accept owns it."""


class SignOutPolicy(StrEnum):
    """What signing out (OFFLINE) does while the agent owns active conversations."""

    REFUSE = "refuse"
    """Refuse it: the agent ends or transfers them first."""
    REQUEUE = "requeue"
    """Hand each back to its queue (a conversation with no queue goes back to the bot)."""


class Outcome(StrEnum):
    RESOLVED = "resolved"
    SPAM = "spam"
    IGNORED = "ignored"


class Mode(StrEnum):
    """Conversation modes of the HKT console, mapped onto states (see ``SetMode``)."""

    AUTO = "auto"
    SILENT = "silent"
    LIVE = "live"
    END = "end"


class CloseReason(StrEnum):
    AGENT_ENDED = "agent_ended"
    CUSTOMER_LEFT = "customer_left"
    CUSTOMER_IDLE = "customer_idle"
    BOT_RESOLVED = "bot_resolved"
    LEFT_MESSAGE = "left_message"
    """Out of hours or waited too long: the customer was invited to leave a message."""
    SUPERVISOR = "supervisor"


class QueueReason(StrEnum):
    """Why a conversation (re-)entered a queue."""

    REQUESTED = "requested"
    OVERFLOW = "overflow"
    TRANSFER = "transfer"
    REOPENED = "reopened"
    AGENT_IDLE = "agent_idle"
    SILENT_MODE = "silent_mode"
    AGENT_SIGNED_OUT = "agent_signed_out"
    BOT_HANDOFF = "bot_handoff"
    """A bot's flow handed the conversation to people (``BotHandedOff`` says why)."""


class DeclineReason(StrEnum):
    """Why an offer ended without an owner."""

    REJECTED = "rejected"
    EXPIRED = "expired"
    RESCINDED = "rescinded"


class TransferTarget(StrEnum):
    AGENT = "agent"
    QUEUE = "queue"
    DEPARTMENT = "department"


class TransferOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RESCINDED = "rescinded"


class Sender(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"


class SystemMessage(StrEnum):
    """System messages the gateways send to customers; texts are per tenant and language."""

    WELCOME = "welcome"
    WAITING = "waiting"
    OUT_OF_HOURS = "out_of_hours"
    BREAK_TIME = "break_time"
    AGENT_JOINED = "agent_joined"
    AGENT_ENDED = "agent_ended"
    IDLE_REMINDER = "idle_reminder"
    IDLE_CLOSED = "idle_closed"
    LEAVE_MESSAGE = "leave_message"
    AGENT_AUTO_REPLY = "agent_auto_reply"
    AGENT_BUSY = "agent_busy"
    """The agent left the customer's message unanswered for ``agent_idle_notify``."""


DEFAULT_TEXTS: Mapping[SystemMessage, str] = {
    SystemMessage.WELCOME: "Hello! How can we help you today?",
    SystemMessage.WAITING: (
        "All our agents are busy. You are number {position} in line; "
        "the estimated wait is {wait_minutes} min."
    ),
    SystemMessage.OUT_OF_HOURS: "We are closed right now.",
    SystemMessage.BREAK_TIME: "Our team is on a short break; we will be with you soon.",
    SystemMessage.AGENT_JOINED: "{agent} has joined the conversation.",
    SystemMessage.AGENT_ENDED: "The conversation has ended. Thank you!",
    SystemMessage.IDLE_REMINDER: "Are you still there?",
    SystemMessage.IDLE_CLOSED: "We closed this conversation as we did not hear back from you.",
    SystemMessage.LEAVE_MESSAGE: "Please leave a message and we will get back to you.",
    SystemMessage.AGENT_AUTO_REPLY: "{text}",
    SystemMessage.AGENT_BUSY: "Our agent is busy right now and will answer you shortly.",
}


@dataclass(frozen=True, slots=True)
class SkillRequirement:
    skill: str
    min_level: int = MIN_SKILL_LEVEL


@dataclass(frozen=True, slots=True)
class RelaxationStep:
    """After ``after_seconds`` of waiting, widen the set of eligible agents."""

    after_seconds: float
    level_drop: int = 0
    """Lower every minimum level by this much (never below 1)."""
    any_agent: bool = False
    """The relaxed skill mode: any online agent of the tenant qualifies."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A local time-of-day range ``[start, end)``; ``end`` of 00:00 means midnight."""

    start: dt.time
    end: dt.time


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Opening hours per weekday (0 = Monday) in a time zone, with breaks and holidays."""

    timezone: str = "UTC"
    weekly: Mapping[int, tuple[TimeRange, ...]] = field(default_factory=dict)
    breaks: Mapping[int, tuple[TimeRange, ...]] = field(default_factory=dict)
    holidays: frozenset[dt.date] = frozenset()


@dataclass(frozen=True, slots=True)
class QueueSettings:
    queue_id: str
    name: str = ""
    requirements: tuple[SkillRequirement, ...] = ()
    priority: int = 0
    """Added to every conversation's own priority in this queue."""
    strategy: Strategy = Strategy.LONGEST_IDLE
    offer_timeout: float = 30.0
    relaxation: tuple[RelaxationStep, ...] = ()
    max_wait: float | None = None
    overflow_queue: str | None = None
    """Where conversations go after ``max_wait``; None invites the customer to leave a message."""
    hours: BusinessHours | None = None
    """None means always open."""
    route_out_of_hours: bool = False
    """Queue conversations that arrive while closed instead of inviting a message."""
    designated_agents: frozenset[str] = frozenset()
    designated_departments: frozenset[str] = frozenset()
    sticky_window: float | None = None
    """Prefer the customer's last agent if they served them within this many seconds (counted
    from the end of that service, or its start while it goes on)."""
    sticky_timeout: float = 30.0
    """How long to wait for the preferred agent before routing to anyone eligible."""
    relax_when_none_online: bool = False
    """The relaxed skill mode by presence: while no agent meeting the requirements (and the
    designations) is online, a waiting conversation is offered to any online agent of the
    designations (skills dropped) at once, whatever its wait."""
    service_level_seconds: float = 20.0
    """Reports' service level: a wait answered within this many seconds is within target."""


@dataclass(frozen=True, slots=True)
class CustomStatus:
    """A tenant-defined agent status (for example "in a meeting") with its auto-reply."""

    name: str
    base: AgentStatus = AgentStatus.AWAY
    auto_reply: str = ""


@dataclass(frozen=True, slots=True)
class TenantSettings:
    channel_weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "webchat": 1.0,
            "whatsapp": 1.0,
            "line": 1.0,
            "sms": 1.0,
            "email": 0.5,
        }
    )
    """Capacity units a conversation on each channel costs; unknown channels cost 1."""
    exclusive_channels: frozenset[str] = frozenset({"voice"})
    """Channels whose conversations take an agent's whole budget."""
    head_start_seconds: float = 60.0
    """Each point of priority counts as this many seconds of waiting."""
    misses_before_away: int = 3
    """Consecutive missed offers that set an agent away; 0 disables."""
    transfer_timeout: float = 60.0
    customer_idle_remind: float | None = None
    """T1: remind the customer this long after the first agent message they left unanswered."""
    customer_idle_close: float | None = None
    """T2: close this long after the reminder."""
    agent_idle_notify: float | None = None
    """T3: notify this long after the first customer message the agent left unanswered."""
    agent_idle_requeue: bool = False
    """After notifying, put the conversation back in its queue."""
    agent_idle_tell_customer: bool = False
    """When notifying, also tell the customer the agent is busy (``SystemMessage.AGENT_BUSY``)."""
    sign_out_with_conversations: SignOutPolicy = SignOutPolicy.REFUSE
    """What signing out does while the agent owns active conversations."""
    wrap_up_seconds: float = 0.0
    default_queue: str | None = None
    region_queues: Mapping[str, str] = field(default_factory=dict)
    """Customer region -> queue, used when a conversation asks for no queue."""
    custom_statuses: tuple[CustomStatus, ...] = ()
    default_language: str = "en"
    texts: Mapping[str, Mapping[SystemMessage, str]] = field(default_factory=dict)
    """Per language, per system message; an empty text disables that message."""
    closed_retention_seconds: float = 300.0
    """How long a closed or abandoned conversation stays in memory, where it can be reopened;
    the store keeps it for good."""
    assumed_handle_seconds: float = 180.0
    """Handle time assumed for wait estimates until a queue has measured its own."""
    agents_see_team_conversations: bool = False
    """Agents may read the conversations owned or served last by agents who share a department
    with them (``core.api.policy.Relation.TEAM``). Not a routing rule: the engine only carries
    it, so that the doors follow it from the event log."""
    time_zone: str = ""
    """The tenant's IANA time zone, in which reports count days; empty: the default queue's
    business hours' zone, else UTC."""

    def custom_status(self, name: str) -> CustomStatus | None:
        return next((s for s in self.custom_statuses if s.name == name), None)

    def text(self, kind: SystemMessage, language: str) -> str:
        for lang in (language, self.default_language):
            texts = self.texts.get(lang)
            if texts is not None and kind in texts:
                return texts[kind]
        return DEFAULT_TEXTS[kind]


@dataclass(frozen=True, slots=True)
class AgentProfile:
    agent_id: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    capacity: float = 1.0
    """The weighted budget: e.g. 3 chats, or 2 chats and 2 e-mails at 0.5 each."""
    departments: frozenset[str] = frozenset()


# --- messages and customers, as the engine carries them in commands and events ----------------


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file stored elsewhere, named by its content hash."""

    sha256: str
    name: str
    content_type: str
    size: int
    uri: str = ""


MAX_OPTIONS = 10
MAX_OPTION_ID = 64


class ChoiceStyle(StrEnum):
    """How choices are meant to be shown; ``AUTO`` lets the channel choose."""

    AUTO = "auto"
    BUTTONS = "buttons"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class MessageOption:
    """One choice: ``id`` comes back when the customer picks it, ``title`` is what they see."""

    id: str
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageChoices:
    """Choices offered with an agent's or a bot's message (``usher.v1.MessageChoices``)."""

    options: tuple[MessageOption, ...]
    style: ChoiceStyle = ChoiceStyle.AUTO
    button_text: str = ""
    header: str = ""
    footer: str = ""

    def problem(self) -> str | None:
        """What makes the choices unusable (no option, too many, an id repeated or out of
        bounds, an empty title), or None. Text limits beyond these are the front door's."""
        if not 1 <= len(self.options) <= MAX_OPTIONS:
            return f"choices have 1 to {MAX_OPTIONS} options"
        ids = [o.id for o in self.options]
        if len(set(ids)) != len(ids):
            return "option ids are unique within a message"
        if any(not o.id or len(o.id) > MAX_OPTION_ID for o in self.options):
            return f"an option id has 1 to {MAX_OPTION_ID} characters"
        if any(not o.title.strip() for o in self.options):
            return "an option needs a title"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageBody:
    """What a message says. ``provider_message_id`` is the idempotency key per tenant and
    channel (a provider's id, or ``request:{id}`` for the API's own requests)."""

    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    provider_message_id: str | None = None
    sent_at: float | None = None
    """When the sender wrote it, as the provider reports (None: when it was recorded)."""
    canned_reply_id: str | None = None
    """The canned reply an agent's message was rendered from (kept on the message, for
    reporting); None for any other message."""
    choices: MessageChoices | None = None
    """Offered with an agent's or a bot's message."""
    selected_option_id: str = ""
    """A customer's pick: the id of an option offered to them."""


MAX_PROFILE_FIELDS = 20
"""Custom fields a profile shows at most (the first in the tenant's display order)."""
MAX_PROFILE_TAGS = 20
MAX_PROFILE_GROUPS = 20
MAX_PROFILE_TEXT = 256
"""Characters of any one string in a profile (a key, label, value, tag, group, name)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileField:
    """One of the tenant's enabled custom fields as a console shows it."""

    key: str
    label: str = ""
    value: str = ""
    """The value as text (``core.store.customer_fields.format_value``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileGroup:
    """A customer group the customer belongs to."""

    group_id: str
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StandingBlock:
    """A block on the customer (by their id, phone, e-mail or a channel id that is one) that
    stood when the profile was read: their messages reach no agent while it ``holds_at``."""

    block_id: int
    reason: str = ""
    until: float | None = None
    """When it ends by itself (epoch seconds); None: when someone unblocks it."""

    def holds_at(self, now: float) -> bool:
        return self.until is None or self.until > now


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerProfile:
    """The customer's record as it travels with their conversations to agents' consoles,
    bounded by the ``MAX_PROFILE_*`` limits (``problem`` names the first one broken). Read from
    the store by the front door when a conversation starts or reopens, and replaced whole by
    ``RefreshCustomerProfile`` when the record changes."""

    customer_id: str = ""
    """The record shown: the conversation's customer, or the one it was merged into."""
    display_name: str = ""
    fields: tuple[ProfileField, ...] = ()
    tags: tuple[str, ...] = ()
    groups: tuple[ProfileGroup, ...] = ()
    previous_conversations: int = 0
    """The customer's conversations that were over when it was read."""
    last_agent: str = ""
    """The agent of the customer's latest conversation that was over, if one served it."""
    block: StandingBlock | None = None

    def problem(self) -> str | None:
        """What makes the profile out of bounds, or None."""
        if len(self.fields) > MAX_PROFILE_FIELDS:
            return f"a profile shows at most {MAX_PROFILE_FIELDS} fields"
        if len(self.tags) > MAX_PROFILE_TAGS:
            return f"a profile shows at most {MAX_PROFILE_TAGS} tags"
        if len(self.groups) > MAX_PROFILE_GROUPS:
            return f"a profile shows at most {MAX_PROFILE_GROUPS} groups"
        if self.previous_conversations < 0:
            return "previous_conversations is not negative"
        texts = [self.customer_id, self.display_name, self.last_agent, *self.tags]
        texts += [t for f in self.fields for t in (f.key, f.label, f.value)]
        texts += [t for g in self.groups for t in (g.group_id, g.name)]
        if self.block is not None:
            texts.append(self.block.reason)
        if any(len(text) > MAX_PROFILE_TEXT for text in texts):
            return f"a profile's strings have at most {MAX_PROFILE_TEXT} characters"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerCard:
    """Who the customer is on the conversation's channel, as consoles and gateways show it,
    with their profile (None: not read, e.g. a conversation older than profiles)."""

    external_id: str = ""
    name: str = ""
    phone: str = ""
    email: str = ""
    profile: CustomerProfile | None = None


MAX_HAND_OFF_FIELDS = 20
"""Collected fields a hand-off card shows at most (the first by key)."""
MAX_HAND_OFF_CHOICES = 20
"""Choices of one multiple-choice field a hand-off card shows at most."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOffCard:
    """How a bot last handed a conversation to people, as agents' consoles show it with its
    offers: the bot and version, the reason (``bot_handoff``, ``bot_could_not_answer``), what
    the flow collected (bounded by ``card``), and when."""

    bot_id: str
    version: int
    reason: str
    fields: tuple[tuple[str, FieldValue], ...] = ()
    at: float = 0.0

    @classmethod
    def card(
        cls,
        *,
        bot_id: str,
        version: int,
        reason: str,
        fields: tuple[tuple[str, FieldValue], ...],
        at: float,
    ) -> HandOffCard:
        """The card of a hand-off: at most ``MAX_HAND_OFF_FIELDS`` fields (the first by key),
        texts cut to ``MAX_PROFILE_TEXT`` characters, lists to ``MAX_HAND_OFF_CHOICES``."""
        shown = sorted(fields)[:MAX_HAND_OFF_FIELDS]
        return cls(
            bot_id=bot_id,
            version=version,
            reason=reason,
            fields=tuple((key[:MAX_PROFILE_TEXT], _bounded(value)) for key, value in shown),
            at=at,
        )


def _bounded(value: FieldValue) -> FieldValue:
    if isinstance(value, str):
        return value[:MAX_PROFILE_TEXT]
    if isinstance(value, tuple):
        return tuple(v[:MAX_PROFILE_TEXT] for v in value[:MAX_HAND_OFF_CHOICES])
    return value


PREVIEW_LENGTH = 200
"""Characters of a conversation's first message kept for offers' previews."""
