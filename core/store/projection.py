"""The record tables' rows that a batch of engine events changes, computed without I/O.

Conversations and agents are written whole from the router's state after the command (so many
events on one conversation make one row write); offers, transfers and agent sessions are
history, written from the events themselves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.reports import visits
from core.reports.rollup import Deltas, merge
from core.routing import events as ev
from core.routing.router import Router
from core.store import message_choices
from core.store.bot_runs import BotRows

Row = tuple[Any, ...]
_json = msgspec.json.Encoder()


def ts(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def as_json(value: object) -> str:
    return _json.encode(value).decode()


Key = tuple[str, str]
Resolution = tuple[str, dt.datetime | None]


@dataclass(slots=True)
class History:
    """Rows of a history table (offers, transfers) whose entries are made, then resolved.

    A resolution of an entry made in the same batch goes into its insert, so the unique
    "one live entry per conversation" indexes hold at every statement: resolutions of earlier
    entries are written first, then the new entries.
    """

    made: dict[Key, list[Any]] = field(default_factory=dict)
    resolved: dict[Key, Resolution] = field(default_factory=dict)

    def make(self, key: Key, row: list[Any]) -> None:
        self.made[key] = row

    def resolve(self, key: Key, outcome: str, at: dt.datetime | None) -> None:
        row = self.made.get(key)
        if row is not None:
            row[-2:] = [outcome, at]
        else:
            self.resolved[key] = (outcome, at)

    def extend(self, other: History) -> None:
        self.made.update(other.made)
        for key, (outcome, at) in other.resolved.items():
            self.resolve(key, outcome, at)

    def updates(self) -> list[Row]:
        return [(*key, outcome, at) for key, (outcome, at) in self.resolved.items()]

    def inserts(self) -> list[Row]:
        return [tuple(row) for row in self.made.values()]


@dataclass(slots=True)
class Projection:
    tenants: list[Row] = field(default_factory=list)
    skills: list[Row] = field(default_factory=list)
    departments: list[Row] = field(default_factory=list)
    agents: list[Row] = field(default_factory=list)
    queues: list[Row] = field(default_factory=list)
    conversations: list[Row] = field(default_factory=list)
    offers: History = field(default_factory=History)
    transfers: History = field(default_factory=History)
    sessions: list[Row] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)
    """Message rows, in the column order of ``MESSAGE_COLUMNS``."""
    removed: list[tuple[str, Row]] = field(default_factory=list)
    """(table, key) of skills, departments and queues removed; deleted before the upserts."""
    rollups: dict[str, Deltas] = field(default_factory=dict)
    """Per tenant, the reports' rollup deltas of the events (``core.reports.rollup``; the
    shard folds them, ``project`` does not)."""
    ratings: list[Row] = field(default_factory=list)
    """Satisfaction ratings (``conversation_ratings``), one per ``ConversationRated``."""
    visits: list[Row] = field(default_factory=list)
    """Web chat visitors' conversations (``conversation_visits``): one per
    ``ConversationStarted`` with a page or referrer (``core.reports.visits``)."""
    bots: BotRows = field(default_factory=BotRows)
    """Bots' flows and what they wrote to customers' records (``core.store.bot_runs``)."""

    def extend(self, other: Projection) -> None:
        for table, key in other.removed:
            self.remove(table, key)
        for name in self.__slots__:
            theirs = getattr(other, name)
            if name in REMOVABLE:
                for row in theirs:
                    self.add(name, row)
            elif name == "rollups":
                for tenant, deltas in theirs.items():
                    merge(self.rollups.setdefault(tenant, {}), deltas)
            elif name != "removed":
                getattr(self, name).extend(theirs)

    def add(self, table: str, row: Row) -> None:
        """Upsert ``row``, cancelling an earlier removal of the same key in this batch."""
        if table in REMOVABLE:
            key = tuple(row[:2])
            self.removed = [(t, k) for t, k in self.removed if (t, k) != (table, key)]
        getattr(self, table).append(row)

    def remove(self, table: str, key: Row) -> None:
        """Delete the row of ``key``, cancelling earlier upserts of it in this batch."""
        rows = getattr(self, table)
        rows[:] = [row for row in rows if tuple(row[:2]) != key]
        self.removed.append((table, key))


REMOVABLE = frozenset({"skills", "departments", "queues"})


MESSAGE_COLUMNS = (
    "tenant_id",
    "message_id",
    "conversation_id",
    "channel",
    "direction",
    "sender",
    "agent_id",
    "content",
    "attachments",
    "provider_message_id",
    "created_at",
    "choices",
    "selected_option_id",
    "canned_reply_id",
)


def _channel(router: Router, conversation_id: str, carried: str) -> str:
    if carried:
        return carried
    conv = router.conversations.get(conversation_id)
    return conv.channel if conv is not None else ""


def message_row(router: Router, e: ev.MessageRecorded) -> Row:
    body = e.body
    attachments = [
        {"sha256": a.sha256, "name": a.name, "type": a.content_type, "size": a.size, "uri": a.uri}
        for a in body.attachments
    ]
    return (
        router.tenant,
        e.message_id,
        e.conversation_id,
        _channel(router, e.conversation_id, e.channel),
        "inbound" if e.sender.value == "customer" else "outbound",
        e.sender.value,
        e.agent_id,
        body.text,
        as_json(attachments),
        body.provider_message_id,
        ts(body.sent_at if body.sent_at is not None else e.at),
        message_choices.to_json(body.choices),
        body.selected_option_id or None,
        body.canned_reply_id,
    )


def system_message_row(router: Router, e: ev.SystemMessageSent) -> Row:
    channel = _channel(router, e.conversation_id, e.channel)
    return (
        router.tenant,
        e.message_id,
        e.conversation_id,
        channel,
        "outbound",
        "system",
        None,
        e.text,
        "[]",
        None,
        ts(e.at),
        None,
        None,
        None,
    )


def project(router: Router, events: list[ev.Event]) -> Projection:
    """Rows for the events of one command (or several), read against ``router`` as it is now."""
    out = Projection()
    tenant = router.tenant
    conversations: dict[str, None] = {}
    agents: dict[str, None] = {}
    for e in events:
        conversation_id = getattr(e, "conversation_id", None)
        if conversation_id is not None:
            conversations[conversation_id] = None
        match e:
            case ev.TenantConfigured():
                out.tenants.append((tenant, as_json(e.settings)))
            case ev.SkillDefined():
                out.add("skills", (tenant, e.skill))
            case ev.DepartmentDefined():
                out.add("departments", (tenant, e.department, e.name))
            case ev.SkillRemoved():
                out.remove("skills", (tenant, e.skill))
            case ev.DepartmentRemoved():
                out.remove("departments", (tenant, e.department))
            case ev.QueueRemoved():
                out.remove("queues", (tenant, e.queue_id))
            case ev.AgentConfigured() | ev.AgentRemoved():
                agents[e.profile.agent_id if isinstance(e, ev.AgentConfigured) else e.agent_id] = (
                    None
                )
            case ev.QueueConfigured():
                out.add("queues", (tenant, e.settings.queue_id, as_json(e.settings), ts(e.at)))
            case ev.AgentStatusChanged():
                agents[e.agent_id] = None
                out.sessions.append(
                    (
                        tenant,
                        e.agent_id,
                        e.status.value,
                        e.custom_status,
                        ts(e.at),
                        e.client_address,
                    )
                )
            case ev.OfferMade():
                out.offers.make(
                    (tenant, e.offer_id),
                    [
                        tenant,
                        e.offer_id,
                        e.conversation_id,
                        list(e.agent_ids),
                        e.broadcast,
                        as_json(e.decision),
                        ts(e.at),
                        ts(e.deadline),
                        None,
                        None,
                    ],
                )
            case ev.OfferAccepted():
                out.offers.resolve((tenant, e.offer_id), "accepted", ts(e.at))
            case ev.OfferDeclined():
                out.offers.resolve((tenant, e.offer_id), e.reason.value, ts(e.at))
            case ev.TransferRequested():
                out.transfers.make(
                    (tenant, e.transfer_id),
                    [
                        tenant,
                        e.transfer_id,
                        e.conversation_id,
                        e.from_agent,
                        "agent",
                        e.to_agent,
                        e.note,
                        ts(e.at),
                        ts(e.deadline),
                        None,
                        None,
                    ],
                )
            case ev.ConversationTransferred():
                out.transfers.make(
                    (tenant, e.transfer_id),
                    [
                        tenant,
                        e.transfer_id,
                        e.conversation_id,
                        e.from_agent,
                        e.target.value,
                        e.target_id,
                        e.note,
                        ts(e.at),
                        None,
                        "accepted",
                        ts(e.at),
                    ],
                )
            case ev.TransferResolved():
                out.transfers.resolve((tenant, e.transfer_id), e.outcome.value, ts(e.at))
            case ev.MessageRecorded():
                out.messages.append(message_row(router, e))
            case ev.SystemMessageSent():
                out.messages.append(system_message_row(router, e))
            case ev.BotTurned() | ev.BotHandedOff() | ev.BotEnded():
                out.bots.add(tenant, e)
            case ev.ConversationStarted() if e.page or e.referrer:
                out.visits.append(
                    (
                        tenant,
                        e.conversation_id,
                        e.channel,
                        visits.page_path(e.page),
                        visits.referrer_host(e.referrer),
                        e.region,
                        ts(e.at),
                    )
                )
            case ev.ConversationRated():
                out.ratings.append(
                    (
                        tenant,
                        e.conversation_id,
                        e.channel,
                        e.queue_id,
                        e.agent_id,
                        e.score,
                        e.comment,
                        ts(e.at),
                    )
                )
    for agent_id in agents:
        agent = router.agents.get(agent_id)
        at = ts(events[-1].at)
        if agent is None:
            out.agents.append((tenant, agent_id, "{}", "offline", None, at, at))
        else:
            profile = as_json(agent.profile)
            status = agent.status.value
            out.agents.append((tenant, agent_id, profile, status, agent.custom_status, None, at))
    for conversation_id in conversations:
        conv = router.conversations.get(conversation_id)
        if conv is None:
            continue  # forgotten by the engine after its retention: the row is final
        out.conversations.append(
            (
                tenant,
                conv.conversation_id,
                conv.channel,
                conv.customer_id,
                conv.state.value,
                conv.queue_id,
                conv.owner,
                conv.last_agent,
                conv.priority,
                conv.outcome.value if conv.outcome else None,
                conv.close_reason.value if conv.close_reason else None,
                sorted(conv.tags),
                ts(conv.created_at),
                ts(conv.first_queued_at),
                ts(conv.assigned_at),
                ts(conv.first_response_at),
                ts(conv.ended_at),
                ts(conv.closed_at),
                ts(events[-1].at),
                conv.region,
                conv.language,
                conv.reference,
            )
        )
    return out
