"""Engine events into rollup deltas: a pure fold, the same whether live or rebuilding.

``RollupState`` follows one tenant's events in order and turns each into *facts* (a measure
of ``core.reports.measures`` and its value, at the event's time, with the conversation's
queue, agent, channel and tags and the agent's departments at that moment; an agent's status
time, split by hour, when the status ends; sign-ins), added up per
``Key``: the local hour (of the tenant's zone) and those dimensions (``Deltas``; the rows of
``report_facts``, from which ``core.store.rollups`` derives its coarser rows). It keeps what
it must remember between events:
each conversation's queue, channel and tags, when its current wait began, its current owner
and when their assignment began; each agent's departments; each queue's service-level
threshold; the tenant's time zone.

Because the state is a function of the events alone, folding a tenant's whole log into a new
``RollupState`` yields exactly the deltas that were applied live (``usher report rebuild``
relies on it). The shard keeps the state beside the router and snapshots them together, so a
restarted shard continues the fold where the log's snapshot left it. The shard *holds* a
batch's deltas (``pending``) and writes them with a later append, about once a second: the
tenant's ``reports_through`` mark, moved in that append's transaction, says which events'
facts are stored, and a restarted shard folds the events after it again.

Empty strings stand for "none": a conversation in no queue, a fact with no agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from core.reports import measures as ms
from core.reports.calendar import Buckets
from core.reports.today import Today
from core.routing import events as ev
from core.routing.model import (
    AgentStatus,
    CloseReason,
    DeclineReason,
    Outcome,
    QueueReason,
    Sender,
)
from core.routing.model import TransferOutcome as TO

Key = tuple[float, str, str, str, tuple[str, ...], tuple[str, ...]]
"""(start of the local hour in epoch seconds, queue, agent, channel, the conversation's tags,
the agent's departments), tags and departments sorted."""
Deltas = dict[Key, list[int]]

DEFAULT_SERVICE_LEVEL_SECONDS: Final = 20.0
BOT_COULD_NOT_ANSWER: Final = "bot_could_not_answer"
"""``BotHandedOff.reason`` of a flow that found no answer."""
FOLLOW_UP: Final = "follow_up"
"""``ConversationAssigned.via`` of an agent taking up a customer (not a customer's wait)."""

_I = ms.INDEX
_WAIT = ms.histogram_start("wait")
_FRT = ms.histogram_start("first_response")
_HANDLE = ms.histogram_start("handle")
_STATUS_TIME: Final = {
    AgentStatus.ONLINE: _I["online_ms"],
    AgentStatus.AWAY: _I["away_ms"],
    AgentStatus.BREAK: _I["break_ms"],
}
_FIRST_SIGN_IN = _I["first_sign_in_ms"]
_LAST_ONLINE = _I["last_online_ms"]
HOUR: Final = 3600.0
_OUTCOMES: Final = {
    Outcome.RESOLVED: _I["resolved"],
    Outcome.SPAM: _I["spam"],
    Outcome.IGNORED: _I["ignored"],
}


@dataclass(slots=True)
class _Conversation:
    channel: str
    tags: tuple[str, ...]
    queue: str
    with_bot: bool
    queued_ever: bool = False
    waiting_since: float | None = None
    """When the current wait began (an overflow keeps the age), None while not waiting."""
    wait_from_transfer: bool = False
    owner: str = ""
    """The agent whose assignment is open (until it ends, is transferred or handed back)."""
    owner_since: float = 0.0
    replied: bool = True
    """Whether the owner has written since their assignment began."""


Measure = tuple[int, int]
"""(index in the vector, value)."""


class RollupState:
    """One tenant's fold. ``fold(events)`` returns the deltas of those events; ``follow``
    advances the state without producing any (for events already counted)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.buckets = Buckets("")
        self.time_zone = ""
        """The tenant's own setting (``TenantSettings.time_zone``); empty: not set."""
        self.default_queue = ""
        self.queue_zones: dict[str, str] = {}
        self.thresholds: dict[str, float] = {}
        self.departments: dict[str, tuple[str, ...]] = {}
        self.statuses: dict[str, tuple[AgentStatus, float]] = {}
        """Each agent's status and since when (the interval ``agent_sessions`` holds open)."""
        self.conversations: dict[str, _Conversation] = {}
        self.today = Today()
        """Today's waits answered and abandoned per queue (live dashboards' service level)."""
        self.pending: Deltas = {}
        """Deltas of stored events not yet written as facts (``hold``, ``take``): they are
        written with a later append, which also moves the tenant's ``reports_through`` mark."""
        self._pending_since: float | None = None
        self._deltas: Deltas = {}
        self._collect = True

    # --- entry points -------------------------------------------------------------------------

    def hold(self, deltas: Deltas, now: float) -> None:
        """Add ``deltas`` to the pending ones (``now``: a monotonic clock's reading)."""
        if deltas:
            if not self.pending or self._pending_since is None:
                self._pending_since = now
            merge(self.pending, deltas)

    def due(self, now: float, age: float, rows: int) -> bool:
        """Whether the pending deltas should be written now: held ``age`` seconds or more, or
        ``rows`` rows or more."""
        if not self.pending:
            return False
        if self._pending_since is None:  # restored from a snapshot: counted from now
            self._pending_since = now
        return now - self._pending_since >= age or len(self.pending) >= rows

    def take(self) -> Deltas:
        """The pending deltas, to be written; none are pending afterwards."""
        pending, self.pending, self._pending_since = self.pending, {}, None
        return pending

    def fold(self, events: Iterable[ev.Event]) -> Deltas:
        """Advance over ``events`` and return their deltas (the caller owns the dict)."""
        self._deltas, self._collect = {}, True
        for event in events:
            self._on(event)
        deltas, self._deltas = self._deltas, {}
        return deltas

    def follow(self, events: Iterable[ev.Event]) -> None:
        """Advance over events whose deltas are already stored."""
        self._collect = False
        try:
            for event in events:
                self._on(event)
        finally:
            self._collect = True

    @property
    def zone_name(self) -> str:
        """The zone the buckets are in: the tenant's setting, else the default queue's
        business hours, else UTC."""
        return self.buckets.name or "UTC"

    def restore(self, other: RollupState) -> None:
        """Take ``other``'s state (a snapshot's) as this one's."""
        self.__setstate__(other.__getstate__())

    def __getstate__(self) -> dict[str, object]:
        state = {name: getattr(self, name) for name in _STATE}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.pending = {}
        self.today = Today()  # a snapshot from before it counted today: from its next event
        for name, value in state.items():
            setattr(self, name, value)
        self._deltas, self._collect = {}, True
        self._pending_since = None  # a monotonic reading means nothing in another process

    def __repr__(self) -> str:
        return (
            f"<RollupState {self.tenant} {self.zone_name} "
            f"{len(self.conversations)} conversations followed>"
        )

    # --- facts --------------------------------------------------------------------------------

    def _add(
        self,
        at: float,
        conv: _Conversation | None,
        agent: str,
        values: tuple[Measure, ...],
        *,
        queue: str | None = None,
        channel: str | None = None,
        tags: tuple[str, ...] | None = None,
    ) -> None:
        if not self._collect:
            return
        q = (conv.queue if conv is not None else "") if queue is None else queue
        c = (conv.channel if conv is not None else "") if channel is None else channel
        if tags is None:
            tags = conv.tags if conv is not None else ()
        departments = self.departments.get(agent, ()) if agent else ()
        key = (self.buckets.of(at)[0], q, agent, c, tags, departments)
        row = self._deltas.get(key)
        if row is None:
            row = self._deltas[key] = [0] * ms.WIDTH
        for index, value in values:
            if index in ms.MERGE:
                row[index] = ms.combine(index, row[index], value)
            else:
                row[index] += value

    def _day(self, at: float) -> tuple[float, float]:
        """The local day holding ``at``: its start and end (epoch seconds)."""
        start = self.buckets.of(at)[1]
        return start, self.buckets.of(start + 26 * HOUR)[1]

    def _threshold(self, conv: _Conversation) -> float:
        return self.thresholds.get(conv.queue, DEFAULT_SERVICE_LEVEL_SECONDS)

    @staticmethod
    def _timed(histogram: int, total: str, seconds: float) -> tuple[Measure, ...]:
        """A duration's bin and its milliseconds in the histogram's sum."""
        seconds = max(0.0, seconds)
        return ((histogram + ms.bin_of(seconds), 1), (_I[total], round(seconds * 1000)))

    # --- assignments --------------------------------------------------------------------------

    def _release(self, conv: _Conversation, at: float) -> None:
        """The open assignment ends (ended, transferred, handed back): handled, handle time."""
        if conv.owner:
            values = ((_I["handled"], 1), *self._timed(_HANDLE, "handle_ms", at - conv.owner_since))
            self._add(at, conv, conv.owner, values)
        conv.owner = ""

    def _assign(self, conv: _Conversation, agent: str, at: float, via: str) -> None:
        """``agent`` takes the conversation: a wait ends (answered, or a follow-up), the
        previous owner's assignment ends, the agent's begins."""
        if conv.waiting_since is not None:
            if via == FOLLOW_UP:
                self._add(at, conv, agent, ((_I["follow_ups"], 1),))
            else:
                waited = at - conv.waiting_since
                values = ((_I["answered"], 1), *self._timed(_WAIT, "wait_ms", waited))
                in_sl = waited <= self._threshold(conv)
                if in_sl:
                    values += ((_I["answered_in_sl"], 1),)
                self.today.count(self._day(at), conv.queue, answered=True, in_sl=in_sl)
                if conv.wait_from_transfer:
                    values += ((_I["transfers_in"], 1),)
                self._add(at, conv, agent, values)
            conv.waiting_since = None
            conv.wait_from_transfer = False
        if conv.owner == agent:
            return
        self._release(conv, at)
        conv.owner, conv.owner_since, conv.replied = agent, at, False
        self._add(at, conv, agent, ((_I["assigned"], 1),))

    # --- events -------------------------------------------------------------------------------

    def _on(self, e: ev.Event) -> None:
        handler = _HANDLERS.get(type(e))
        if handler is not None:
            handler(self, e)

    def _rezone(self) -> None:
        name = self.time_zone or self.queue_zones.get(self.default_queue, "") or ""
        if name != self.buckets.name:
            self.buckets = Buckets(name)

    def _on_tenant(self, e: ev.TenantConfigured) -> None:
        self.time_zone = getattr(e.settings, "time_zone", "") or ""
        self.default_queue = e.settings.default_queue or ""
        self._rezone()

    def _on_queue(self, e: ev.QueueConfigured) -> None:
        s = e.settings
        self.queue_zones[s.queue_id] = s.hours.timezone if s.hours is not None else ""
        self.thresholds[s.queue_id] = getattr(
            s, "service_level_seconds", DEFAULT_SERVICE_LEVEL_SECONDS
        )
        self._rezone()

    def _on_queue_removed(self, e: ev.QueueRemoved) -> None:
        self.queue_zones.pop(e.queue_id, None)
        self._rezone()

    def _on_agent(self, e: ev.AgentConfigured) -> None:
        self.departments[e.profile.agent_id] = tuple(sorted(e.profile.departments))

    def _on_status(self, e: ev.AgentStatusChanged) -> None:
        """The status that ends is counted by the hour (time, last moment online); a status
        after offline is a sign-in. The status that begins is counted when it ends."""
        before = self.statuses.get(e.agent_id)
        if before is not None and before[0] in _STATUS_TIME:
            status, since = before
            start = since
            while start < e.at:
                hour = self.buckets.of(start)[0]
                end = min(e.at, hour + HOUR)
                if end <= start:  # a zone's hour shorter than its slot (never in practice)
                    end = e.at
                values = (
                    (_STATUS_TIME[status], round((end - start) * 1000)),
                    (_LAST_ONLINE, round(end * 1000)),
                )
                self._add(start, None, e.agent_id, values)
                start = end
        if (before is None or before[0] is AgentStatus.OFFLINE) and (
            e.status is not AgentStatus.OFFLINE
        ):
            self._add(
                e.at, None, e.agent_id, ((_I["sign_ins"], 1), (_FIRST_SIGN_IN, round(e.at * 1000)))
            )
        self.statuses[e.agent_id] = (e.status, e.at)

    def _on_started(self, e: ev.ConversationStarted) -> None:
        conv = _Conversation(e.channel, tuple(sorted(e.tags)), e.queue_id or "", e.with_bot)
        self.conversations[e.conversation_id] = conv
        values: tuple[Measure, ...] = ((_I["started"], 1),)
        if e.with_bot:
            values += ((_I["bot_started"], 1),)
        self._add(e.at, conv, "", values)

    def _on_queued(self, e: ev.ConversationQueued) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is None:
            return
        if conv.waiting_since is not None and e.reason is QueueReason.OVERFLOW:
            self._add(e.at, conv, "", ((_I["overflowed"], 1),))
        self._release(conv, e.at)
        conv.queue = e.queue_id
        values: tuple[Measure, ...] = ((_I["queued"], 1),)
        if not conv.queued_ever:
            values += ((_I["handed"], 1),)
            if conv.with_bot:
                values += ((_I["bot_handed_off"], 1),)
            conv.queued_ever = True
        conv.wait_from_transfer = e.reason is QueueReason.TRANSFER or (
            e.reason is QueueReason.OVERFLOW and conv.wait_from_transfer
        )
        conv.waiting_since = e.enqueued_at
        self._add(e.at, conv, "", values)

    def _on_offer_made(self, e: ev.OfferMade) -> None:
        conv = self.conversations.get(e.conversation_id)
        queue = e.queue_id or (conv.queue if conv is not None else "")
        for agent in e.agent_ids:
            self._add(e.at, conv, agent, ((_I["offered"], 1),), queue=queue)

    def _on_offer_declined(self, e: ev.OfferDeclined) -> None:
        conv = self.conversations.get(e.conversation_id)
        for agent in e.missed_by:
            self._add(e.at, conv, agent, ((_I["offers_missed"], 1),))
        if e.reason is DeclineReason.REJECTED:
            for agent in e.declined_by:
                self._add(e.at, conv, agent, ((_I["offers_rejected"], 1),))

    def _on_offer_accepted(self, e: ev.OfferAccepted) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is not None:
            self._assign(conv, e.agent_id, e.at, "offer")

    def _on_assigned(self, e: ev.ConversationAssigned) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is not None:
            self._assign(conv, e.agent_id, e.at, e.via)

    def _on_message(self, e: ev.MessageRecorded) -> None:
        conv = self.conversations.get(e.conversation_id)
        channel = e.channel or (conv.channel if conv is not None else "")
        if e.sender is Sender.CUSTOMER:
            self._add(e.at, conv, e.owner or "", ((_I["customer_messages"], 1),), channel=channel)
        elif e.sender is Sender.BOT:
            self._add(e.at, conv, "", ((_I["bot_messages"], 1),), channel=channel)
        else:
            agent = e.agent_id or ""
            values: tuple[Measure, ...] = ((_I["agent_messages"], 1),)
            if getattr(e.body, "canned_reply_id", None):
                values += ((_I["canned_replies"], 1),)
            if conv is not None and agent and agent == conv.owner and not conv.replied:
                conv.replied = True
                values += self._timed(_FRT, "first_response_ms", e.at - conv.owner_since)
            self._add(e.at, conv, agent, values, channel=channel)

    def _on_ended(self, e: ev.ConversationEnded) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is None:
            return
        values: tuple[Measure, ...] = ((_I["ended"], 1),)
        if e.reason is CloseReason.LEFT_MESSAGE:
            values += ((_I["left_message"], 1),)
        elif not conv.queued_ever:
            values += ((_I["bot_only"], 1),)
        if e.outcome is not None:
            values += ((_OUTCOMES[e.outcome], 1),)
        conv.waiting_since = None
        self._add(e.at, conv, e.agent_id or "", values)
        self._release(conv, e.at)

    def _on_abandoned(self, e: ev.ConversationAbandoned) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is None or conv.waiting_since is None:
            return
        values: tuple[Measure, ...] = ((_I["abandoned"], 1),)
        if e.at - conv.waiting_since <= self._threshold(conv):
            values += ((_I["abandoned_in_sl"], 1),)
        self.today.count(self._day(e.at), conv.queue, answered=False, in_sl=False)
        conv.waiting_since = None
        self._add(e.at, conv, "", values)

    def _on_returned_to_bot(self, e: ev.ConversationReturnedToBot) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is not None:
            conv.waiting_since = None
            self._release(conv, e.at)

    def _on_transferred(self, e: ev.ConversationTransferred) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is None:
            return
        self._add(e.at, conv, e.from_agent, ((_I["transfers_out"], 1),))
        self._release(conv, e.at)

    def _on_transfer_resolved(self, e: ev.TransferResolved) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is None or e.outcome is not TO.ACCEPTED:
            return
        self._add(e.at, conv, e.from_agent, ((_I["transfers_out"], 1),))
        self._add(e.at, conv, e.to_agent, ((_I["transfers_in"], 1),))
        self._assign(conv, e.to_agent, e.at, "transfer")

    def _on_bot_handed_off(self, e: ev.BotHandedOff) -> None:
        if e.reason == BOT_COULD_NOT_ANSWER:
            conv = self.conversations.get(e.conversation_id)
            self._add(e.at, conv, "", ((_I["bot_unanswered"], 1),))

    def _on_rated(self, e: ev.ConversationRated) -> None:
        """Counted when given, where the conversation was when it ended (the event says)."""
        if not 1 <= e.score <= 5:
            return
        values = ((_I["ratings"], 1), (_I["rating_points"], e.score), (_I[f"rating_{e.score}"], 1))
        self._add(
            e.at,
            None,
            e.agent_id,
            values,
            queue=e.queue_id,
            channel=e.channel,
            tags=tuple(sorted(e.tags)),
        )

    def _on_tags(self, e: ev.TagsChanged) -> None:
        conv = self.conversations.get(e.conversation_id)
        if conv is not None:
            conv.tags = tuple(sorted(e.tags))

    def _on_forgotten(self, e: ev.ConversationForgotten) -> None:
        self.conversations.pop(e.conversation_id, None)


_STATE: Final = (
    "tenant",
    "buckets",
    "time_zone",
    "default_queue",
    "queue_zones",
    "thresholds",
    "departments",
    "statuses",
    "conversations",
    "today",
    "pending",
)

_HANDLERS: Final[dict[type, Callable[[RollupState, Any], None]]] = {
    ev.TenantConfigured: RollupState._on_tenant,
    ev.QueueConfigured: RollupState._on_queue,
    ev.QueueRemoved: RollupState._on_queue_removed,
    ev.AgentConfigured: RollupState._on_agent,
    ev.AgentStatusChanged: RollupState._on_status,
    ev.ConversationStarted: RollupState._on_started,
    ev.ConversationQueued: RollupState._on_queued,
    ev.OfferMade: RollupState._on_offer_made,
    ev.OfferDeclined: RollupState._on_offer_declined,
    ev.OfferAccepted: RollupState._on_offer_accepted,
    ev.ConversationAssigned: RollupState._on_assigned,
    ev.MessageRecorded: RollupState._on_message,
    ev.ConversationEnded: RollupState._on_ended,
    ev.ConversationAbandoned: RollupState._on_abandoned,
    ev.ConversationReturnedToBot: RollupState._on_returned_to_bot,
    ev.ConversationTransferred: RollupState._on_transferred,
    ev.TransferResolved: RollupState._on_transfer_resolved,
    ev.BotHandedOff: RollupState._on_bot_handed_off,
    ev.ConversationRated: RollupState._on_rated,
    ev.TagsChanged: RollupState._on_tags,
    ev.ConversationForgotten: RollupState._on_forgotten,
}
"""Event type -> handler; events not listed count nothing."""


def merge(into: Deltas, more: Deltas) -> None:
    """Add ``more`` into ``into`` (the deltas of several appends in one commit); ``more`` is
    left as it was."""
    for key, row in more.items():
        mine = into.get(key)
        if mine is None:
            into[key] = list(row)
        else:
            for i, value in enumerate(row):
                if value:
                    mine[i] = ms.combine(i, mine[i], value)
