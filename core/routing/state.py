"""The engine's mutable records. Only ``Router._apply`` changes them (one event at a time).

Capacity is kept in integer milli-units so weights such as 0.5 or 0.3 add up exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.bots.flow import Bot
from core.bots.interpreter import BotState, KnowledgeSearch, WebhookCall
from core.routing.hours import HoursStatus
from core.routing.model import (
    AgentProfile,
    AgentStatus,
    CloseReason,
    ConversationState,
    CustomerCard,
    HandOffCard,
    Outcome,
    QueueSettings,
    Strategy,
    TransferOutcome,
    TransferTarget,
)
from core.routing.timers import TimerKind

if TYPE_CHECKING:
    from core.routing.explain import Decision
    from core.routing.pools import Group, GroupKey

UNIT = 1000
"""Milli-units per capacity unit."""
EXCLUSIVE = -1
"""The cost of a conversation that takes an agent's whole budget (voice)."""


def to_units(value: float) -> int:
    return round(value * UNIT)


class Agent:
    """An agent's live state. ``load`` counts owned conversations, pending offers and pending
    transfers to this agent; ``override`` is the part of ``load`` allowed past ``capacity`` by a
    supervisor's recorded override."""

    __slots__ = (
        "agent_id",
        "capacity",
        "conversations",
        "custom_status",
        "groups",
        "last_activity_at",
        "last_assigned_at",
        "last_offered",
        "load",
        "missed_offers",
        "offers",
        "override",
        "profile",
        "seq",
        "status",
        "status_since",
        "transfers_in",
        "version",
    )

    def __init__(self, profile: AgentProfile, seq: int, at: float) -> None:
        self.agent_id = profile.agent_id
        self.profile = profile
        self.capacity = to_units(profile.capacity)
        self.seq = seq
        self.status = AgentStatus.OFFLINE
        self.custom_status: str | None = None
        self.status_since = at
        self.load = 0
        self.override = 0
        self.last_assigned_at = at
        self.last_activity_at = at
        self.last_offered = 0
        self.missed_offers = 0
        self.version = 0
        self.groups: list[Group] = []
        self.offers: set[str] = set()
        self.transfers_in: set[str] = set()
        self.conversations: set[str] = set()

    def reconfigure(self, profile: AgentProfile) -> None:
        self.profile = profile
        self.capacity = to_units(profile.capacity)

    @property
    def available(self) -> bool:
        """Online with some room left: may be offered work."""
        return self.status is AgentStatus.ONLINE and self.load < self.capacity

    def cost_of(self, cost: int) -> int:
        return self.capacity if cost == EXCLUSIVE else cost

    def fits(self, cost: int) -> bool:
        if cost == EXCLUSIVE:
            return self.load == 0
        return self.load + cost <= self.capacity

    def key(self, strategy: Strategy) -> tuple[float, ...]:
        """The strategy's ordering key: smaller is better."""
        return STRATEGY_KEYS[strategy](self)

    def __repr__(self) -> str:
        return (
            f"<Agent {self.agent_id} {self.status} load={self.load / UNIT:g}/"
            f"{self.capacity / UNIT:g} offers={len(self.offers)}>"
        )


StrategyKey = Callable[[Agent], tuple[float, ...]]

STRATEGY_KEYS: dict[Strategy, StrategyKey] = {
    Strategy.LONGEST_IDLE: lambda a: (a.last_assigned_at, a.seq),
    Strategy.LEAST_BUSY: lambda a: (a.load / a.capacity, a.last_assigned_at, a.seq),
    Strategy.ROUND_ROBIN: lambda a: (a.last_offered, a.seq),
    Strategy.BROADCAST: lambda a: (a.seq,),
}
"""Each strategy's ordering of agents (smaller is better), as plain functions for the hot loop."""


@dataclass(frozen=True, slots=True)
class BotRun:
    """A bot's flow in a conversation: the version it runs (kept while it runs, whatever is
    published meanwhile), where it is, and the effect it waits for."""

    bot: Bot
    state: BotState
    run: int
    """Flows started in the conversation so far (this one included)."""
    trigger: str = ""
    pending: WebhookCall | KnowledgeSearch | None = None
    """The effect awaited while ``state.waiting`` is EFFECT."""

    @property
    def running(self) -> bool:
        return not self.state.over


class Conversation:
    __slots__ = (
        "assigned_at",
        "bot",
        "channel",
        "close_reason",
        "closed_at",
        "conversation_id",
        "cost",
        "created_at",
        "customer",
        "customer_id",
        "deadlines",
        "decisions",
        "declined",
        "effective_at",
        "ended_at",
        "enqueued_at",
        "first_queued_at",
        "first_response_at",
        "hand_off",
        "held",
        "language",
        "last_agent",
        "last_sender",
        "listed",
        "message_keys",
        "monitors",
        "offer",
        "outcome",
        "override",
        "owner",
        "plan",
        "plan_offsets",
        "plan_started_at",
        "preview",
        "priority",
        "queue_id",
        "reference",
        "region",
        "reminded",
        "reserved",
        "seq",
        "state",
        "step",
        "tags",
        "transfer",
        "transfers",
    )

    def __init__(
        self,
        conversation_id: str,
        seq: int,
        channel: str,
        cost: int,
        customer_id: str,
        region: str,
        language: str,
        priority: int,
        tags: frozenset[str],
        at: float,
    ) -> None:
        self.conversation_id = conversation_id
        self.seq = seq
        self.channel = channel
        self.cost = cost
        self.customer_id = customer_id
        self.region = region
        self.language = language
        self.priority = priority
        self.tags = tags
        self.state = ConversationState.BOT
        self.created_at = at
        self.queue_id: str | None = None
        self.plan: tuple[GroupKey, ...] = ()
        self.plan_offsets: tuple[float, ...] = ()
        self.plan_started_at = at
        self.step = 0
        self.held = False
        self.listed = False
        """In its group's line (a routable conversation may wait to be listed until its command
        finishes; see ``Router._list_later``)."""
        self.enqueued_at: float | None = None
        self.first_queued_at: float | None = None
        self.effective_at = 0.0
        """``enqueued_at - priority * head_start``: the smaller, the higher the score."""
        self.offer: str | None = None
        self.owner: str | None = None
        self.override = False
        self.reserved = 0
        """Units held on the owner, or on the recipient of a directed offer."""
        self.last_agent: str | None = None
        self.transfer: str | None = None
        self.transfers: list[TransferRecord] = []
        self.declined: set[str] = set()
        self.monitors: set[str] = set()
        self.decisions: list[Decision] = []
        self.deadlines: dict[TimerKind, float] = {}
        self.last_sender: str | None = None
        self.reminded = False
        self.assigned_at: float | None = None
        self.first_response_at: float | None = None
        self.ended_at: float | None = None
        self.closed_at: float | None = None
        self.close_reason: CloseReason | None = None
        self.outcome: Outcome | None = None
        self.customer = CustomerCard()
        self.preview = ""
        """The start of the customer's first message (for offers)."""
        self.message_keys: list[tuple[str, str]] = []
        """(channel, idempotency key) of its messages that have one (forgotten with it)."""
        self.bot: BotRun | None = None
        """The bot flow running in it, or the last one that ran (``running`` says which)."""
        self.reference = ""
        """The QR code's or campaign link's reference it was opened with (empty: none)."""
        self.hand_off: HandOffCard | None = None
        """How a bot last handed it to people (shown with its offers), if one did."""

    @property
    def group_key(self) -> GroupKey:
        return self.plan[self.step]

    def __repr__(self) -> str:
        return f"<Conversation {self.conversation_id} {self.state} owner={self.owner}>"


class Offer:
    __slots__ = ("agent_ids", "broadcast", "conversation_id", "deadline", "offer_id")

    def __init__(
        self,
        offer_id: str,
        conversation_id: str,
        agent_ids: tuple[str, ...],
        deadline: float,
        broadcast: bool,
    ) -> None:
        self.offer_id = offer_id
        self.conversation_id = conversation_id
        self.agent_ids = agent_ids
        self.deadline = deadline
        self.broadcast = broadcast


class TransferRecord:
    """One transfer in a conversation's history; pending while ``outcome`` is None."""

    __slots__ = (
        "at",
        "deadline",
        "from_agent",
        "note",
        "outcome",
        "reserved",
        "resolved_at",
        "target",
        "target_id",
        "transfer_id",
    )

    def __init__(
        self,
        transfer_id: str,
        from_agent: str,
        target: TransferTarget,
        target_id: str,
        note: str,
        at: float,
        deadline: float | None,
    ) -> None:
        self.transfer_id = transfer_id
        self.from_agent = from_agent
        self.target = target
        self.target_id = target_id
        self.note = note
        self.at = at
        self.deadline = deadline
        self.outcome: TransferOutcome | None = None
        self.reserved = 0
        self.resolved_at: float | None = None


class QueueRuntime:
    """A queue's settings plus what the engine measures and holds for it."""

    __slots__ = (
        "avg_handle_seconds",
        "held",
        "hours_deadline",
        "hours_status",
        "offsets",
        "plan",
        "settings",
        "waiting",
    )

    def __init__(
        self,
        settings: QueueSettings,
        plan: tuple[GroupKey, ...],
        offsets: tuple[float, ...],
        assumed_handle_seconds: float,
    ) -> None:
        self.settings = settings
        self.plan = plan
        """The eligibility group of each step, from the settings (stickiness comes on top)."""
        self.offsets = offsets
        self.waiting = 0
        """Routable conversations waiting in this queue (the held ones not included)."""
        self.held: dict[str, None] = {}
        """Conversations queued during a break, in arrival order."""
        self.hours_status = HoursStatus.OPEN
        self.hours_deadline: float | None = None
        self.avg_handle_seconds = assumed_handle_seconds
