"""A conversation's activity log: its stored events (decoded by ``core.store.codec``) and its
notes, oldest first, translated into entries people read. Read-only; receipts and typing are
left out (they are the other side's view, not activity)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.routing import events as ev
from core.store import codec
from core.store.errors import InvalidInput, translated_errors
from core.store.validation import require_name, require_text

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)
_SKIPPED: Final = ("ReceiptRecorded", "TypingChanged", "CustomerIdleReminded")

_SQL: Final = """
SELECT * FROM (
    SELECT e.at, 0 AS source, e.seq AS id, e.type, e.payload::text AS payload,
           NULL::text AS author, NULL::text AS body
    FROM events e
    WHERE e.tenant_id = $1 AND e.payload ? 'conversation_id'
      AND e.payload ->> 'conversation_id' = $2 AND e.type <> ALL($3::text[])
    UNION ALL
    SELECT n.created_at, 1, n.note_id, 'note', NULL, n.author, n.body
    FROM conversation_notes n
    WHERE n.tenant_id = $1 AND n.conversation_id = $2
) a
WHERE (a.at, a.source, a.id) > ($4, $5, $6)
ORDER BY a.at, a.source, a.id
LIMIT $7
"""


@dataclass(frozen=True, slots=True)
class Activity:
    at: dt.datetime
    kind: str
    """``started``, ``queued``, ``offered``, ``message``, ``ended``, ``noted``... (snake_case)."""
    actor: str
    """``agents/{id}``, ``customer``, ``bot``, ``system``, or empty when Usher did it."""
    detail: str
    message_id: int | None = None


@dataclass(frozen=True, slots=True)
class ActivityPage:
    entries: tuple[Activity, ...]
    next_page_token: str | None


def _agent(agent_id: str | None) -> str:
    return f"agents/{agent_id}" if agent_id else ""


def _by(by: str) -> str:
    """An event's ``by`` (an agent id, ``supervisor:...``, ``system``...) as an actor."""
    if not by or by == "system":
        return ""
    return by if ":" in by or "/" in by else _agent(by)


def translate(event: ev.Event) -> tuple[str, str, str, int | None] | None:
    """(kind, actor, detail, message id) of an event, or None for one that is not activity."""
    match event:
        case ev.ConversationStarted():
            bot = "with the bot" if event.with_bot else "for an agent"
            return "started", "customer", f"on {event.channel}, {bot}", None
        case ev.ConversationQueued():
            return "queued", "", f"queues/{event.queue_id} ({event.reason.value})", None
        case ev.OfferMade():
            return "offered", "", ", ".join(_agent(a) for a in event.agent_ids), None
        case ev.OfferAccepted():
            return "offer_accepted", _agent(event.agent_id), "", None
        case ev.OfferDeclined():
            return "offer_declined", "", event.reason.value, None
        case ev.ConversationAssigned():
            return "assigned", _by(event.by), f"{_agent(event.agent_id)} ({event.via})", None
        case ev.MessageRecorded():
            actor = _agent(event.agent_id) if event.agent_id else event.sender.value
            return "message", actor, "", event.message_id
        case ev.SystemMessageSent():
            return "message", "system", event.kind.value, event.message_id or None
        case ev.TagsChanged():
            return "tags_changed", "", ", ".join(sorted(event.tags)), None
        case ev.TransferRequested():
            return "transfer_requested", _agent(event.from_agent), _agent(event.to_agent), None
        case ev.TransferResolved():
            detail = f"{_agent(event.to_agent)}: {event.outcome.value}"
            return "transfer_resolved", _agent(event.from_agent), detail, None
        case ev.ConversationTransferred():
            detail = f"{event.target.value}s/{event.target_id}"
            return "transferred", _agent(event.from_agent), detail, None
        case ev.ConversationEnded():
            actor = _by(event.by) or _agent(event.agent_id)
            outcome = f", {event.outcome.value}" if event.outcome else ""
            return "ended", actor, f"{event.reason.value}{outcome}", None
        case ev.WrapUpFinished():
            return "wrap_up_finished", _agent(event.agent_id), "", None
        case ev.ConversationAbandoned():
            return "abandoned", "customer", "", None
        case ev.ConversationReturnedToBot():
            return "returned_to_bot", _by(event.by), "", None
        case ev.MonitorChanged():
            detail = "started" if event.monitoring else "stopped"
            return "monitor_changed", f"supervisors/{event.supervisor_id}", detail, None
        case ev.AgentIdleNotified():
            return "agent_idle", _agent(event.agent_id), "", None
    return None


def _encode(at: dt.datetime, source: int, row_id: int) -> str:
    raw = json.dumps([(at - _EPOCH) // _MICROSECOND, source, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> tuple[dt.datetime, int, int]:
    try:
        micros, source, row_id = json.loads(
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        )
        if not all(isinstance(v, int) for v in (micros, source, row_id)):
            raise ValueError(token)
        return _EPOCH + micros * _MICROSECOND, source, row_id
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise InvalidInput("the page token is not one this log issued") from exc


class ActivityLog:
    """Reads of conversations' activity over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def page(
        self, tenant: str, conversation_id: str, size: int, token: str | None
    ) -> ActivityPage:
        """At most ``size`` entries after ``token`` (the start when None), oldest first."""
        require_name("tenant", tenant)
        require_text("conversation_id", conversation_id, min_len=1, max_len=200)
        position = _decode(token) if token else (_EPOCH - _MICROSECOND, 0, 0)
        entries: list[Activity] = []
        batch = size + 1
        # events that are not activity are read and dropped: read on until the page is full
        while True:
            with translated_errors():
                rows = await self._pool.fetch(
                    _SQL,
                    tenant,
                    conversation_id,
                    list(_SKIPPED),
                    *position,
                    batch,
                    timeout=self._timeout,
                )
            for i, row in enumerate(rows):
                position = (row["at"], row["source"], row["id"])
                entry = _entry(row)
                if entry is not None:
                    entries.append(entry)
                if len(entries) == size:
                    more = i + 1 < len(rows) or len(rows) == batch
                    return ActivityPage(tuple(entries), _encode(*position) if more else None)
            if len(rows) < batch:
                return ActivityPage(tuple(entries), None)


def _entry(row: asyncpg.Record) -> Activity | None:
    if row["source"] == 1:
        return Activity(row["at"], "noted", row["author"], row["body"])
    translated = translate(codec.decode(row["type"], row["payload"]))
    if translated is None:
        return None
    kind, actor, detail, message_id = translated
    return Activity(row["at"], kind, actor, detail, message_id)
