"""Conversation records: search, transcripts and CSV exports, read from PostgreSQL.

Search filters combine with AND; results come newest first (``created_at`` desc, then
``conversation_id`` desc) in keyset-paged pages, so a page token stays valid while rows are added.
The keyword is a case-insensitive substring match on message content (``ILIKE``, escaped), which
finds Chinese and Thai as well as English; a trigram index speeds it up where one exists
(``keyword_match`` writes it: ``LIKE`` for a keyword without letter case, and a cheap
ASCII-only test in front of ``ILIKE`` where one can be derived).
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, TextIO

import asyncpg

from core.routing.model import MessageChoices
from core.store import message_choices
from core.store.errors import InvalidInput, translated_errors
from core.store.validation import require_aware, require_name, require_phone, require_text

MAX_PAGE_SIZE: Final = 500
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationQuery:
    """What to look for in one tenant's conversations; unset filters match everything."""

    tenant: str
    customer_id: str | None = None
    phone: str | None = None
    """E.164; matches the conversations of every customer with this phone."""
    conversation_id: str | None = None
    created_from: dt.datetime | None = None
    """Inclusive; time-zone aware."""
    created_until: dt.datetime | None = None
    """Exclusive; time-zone aware."""
    agent_id: str | None = None
    """The conversation's last agent, or the author of any of its messages."""
    keyword: str | None = None
    """A substring of any message's content, case-insensitive; surrounding blanks ignored."""
    page_size: int = 50


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    conversation_id: str
    channel: str
    customer_id: str
    customer_name: str | None
    customer_phone: str | None
    state: str
    queue_id: str | None
    owner_agent_id: str | None
    last_agent_id: str | None
    priority: int
    outcome: str | None
    close_reason: str | None
    tags: tuple[str, ...]
    created_at: dt.datetime
    queued_at: dt.datetime | None
    assigned_at: dt.datetime | None
    first_response_at: dt.datetime | None
    ended_at: dt.datetime | None
    closed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Page:
    records: tuple[ConversationRecord, ...]
    next_page_token: str | None
    """Pass to ``search`` with the same query for the next page; None on the last page."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file already stored elsewhere, named by its content hash."""

    sha256: str
    name: str
    type: str
    size: int
    uri: str = ""
    """Where the gateway serves it (https, or an object-store URI); empty when not known."""


@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: int
    conversation_id: str
    channel: str
    direction: str
    sender: str
    agent_id: str | None
    content: str
    attachments: tuple[Attachment, ...]
    provider_message_id: str | None
    created_at: dt.datetime
    choices: MessageChoices | None = None
    """Offered with an agent's or a bot's message."""
    selected_option_id: str = ""
    """A customer's pick."""
    canned_reply_id: str | None = None
    """The canned reply an agent's message was sent from."""


# --- queries -----------------------------------------------------------------------------------

_CONVERSATION_COLUMNS_SQL = """
c.conversation_id, c.channel, c.customer_id, cu.name AS customer_name,
cu.phone AS customer_phone, c.state, c.queue_id, c.owner_agent_id, c.last_agent_id, c.priority,
c.outcome, c.close_reason, c.tags, c.created_at, c.queued_at, c.assigned_at,
c.first_response_at, c.ended_at, c.closed_at"""


def like_pattern(keyword: str) -> str:
    """``%keyword%`` for ``LIKE ... ESCAPE '\\'``, with ``%``, ``_`` and ``\\`` taken literally."""
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_FOLDED_ALONE: Final = frozenset(
    "".join(chr(c) for c in range(0x20, 0x7F) if not chr(c).isalpha()) + "abcdefghlmnopqrstuvwxyz"
)
"""ASCII characters that lower-casing produces from themselves and their ASCII capital only, in
every locale and collation provider: not i, j, k (U+0130, Lithuanian capitals, U+212A KELVIN
SIGN lower to them), nor anything lower-casing never produces (digits, punctuation)."""
_MARKS_LOWERING_ADDS: Final = frozenset("\u0300\u0301\u0303\u0307")
"""Combining marks that lower-casing writes after i or j (U+0130; Lithuanian capitals): content
can hold them lowered where it does not hold them as written."""
ANCHOR_MIN: Final = 3
"""An anchor shorter than this passes too many messages to pay for itself."""


def ascii_anchor(keyword: str) -> str | None:
    """The longest run of ``keyword``'s characters that every message ``ILIKE`` matches contains
    up to ASCII letter case, lower-cased; None when shorter than ``ANCHOR_MIN``.

    ``ILIKE`` compares ``lower()`` of both sides. A character of ``_FOLDED_ALONE`` in the
    lowered content comes from itself or its ASCII capital, one character for one, so where the
    lowered content holds the lowered keyword, the content holds each such run up to ASCII case:
    ``content COLLATE "C" ILIKE`` of the run (which lowers ASCII letters only, with no wide
    characters) is true for every match, and cheap to reject the rest with."""
    best, run = "", ""
    for ch in keyword:
        low = ch.lower() if ch.isascii() else ""
        if low in _FOLDED_ALONE:
            run += low
            best = max(best, run, key=len)
        else:
            run = ""
    return best if len(best) >= ANCHOR_MIN else None


def keyword_match(content: str, keyword: str, arg: Callable[[object], str]) -> str:
    """SQL true when the text column ``content`` contains ``keyword`` (stripped, non-empty),
    ignoring letter case as ``ILIKE`` does; ``arg`` adds a parameter and returns its reference.

    A keyword without letter case (Chinese, Thai) is matched with ``LIKE``: the same matches at
    a third of the cost (unless it holds a mark lower-casing may add). Otherwise ``ILIKE``
    (which lower-cases every message it reads) runs only where the keyword's ``ascii_anchor``
    is found. That test is wrapped in ``(CASE ... END) IS NOT NULL``, which the planner
    estimates as passing 99.5 %: the ``ILIKE``'s own estimate from the column's statistics
    still chooses the plan (a trigram index, a walk down the newest conversations, a scan)."""
    if keyword.lower() == keyword.upper() and _MARKS_LOWERING_ADDS.isdisjoint(keyword):
        return f"{content} LIKE {arg(like_pattern(keyword))} ESCAPE '\\'"
    match = f"{content} ILIKE {arg(like_pattern(keyword))} ESCAPE '\\'"
    anchor = ascii_anchor(keyword)
    if anchor is None:
        return match
    test = f"{content} COLLATE \"C\" ILIKE {arg(like_pattern(anchor))} ESCAPE '\\'"
    return f"(CASE WHEN {test} THEN true END) IS NOT NULL AND {match}"


def _where(
    query: ConversationQuery, after: tuple[dt.datetime, str] | None
) -> tuple[str, list[Any]]:
    """The WHERE clause and its arguments ($1 is the tenant)."""
    args: list[Any] = [query.tenant]
    clauses = ["c.tenant_id = $1"]

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.customer_id is not None:
        clauses.append(f"c.customer_id = {arg(query.customer_id)}")
    if query.phone is not None:
        clauses.append(
            "c.customer_id IN (SELECT p.customer_id FROM customers p"
            f" WHERE p.tenant_id = $1 AND p.phone = {arg(query.phone)})"
        )
    if query.conversation_id is not None:
        clauses.append(f"c.conversation_id = {arg(query.conversation_id)}")
    if query.created_from is not None:
        clauses.append(f"c.created_at >= {arg(query.created_from)}")
    if query.created_until is not None:
        clauses.append(f"c.created_at < {arg(query.created_until)}")
    if query.agent_id is not None:
        agent = arg(query.agent_id)
        clauses.append(
            f"(c.last_agent_id = {agent} OR EXISTS (SELECT 1 FROM messages m"
            " WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.conversation_id"
            f" AND m.agent_id = {agent}))"
        )
    keyword = (query.keyword or "").strip()
    if keyword:
        clauses.append(
            "EXISTS (SELECT 1 FROM messages k"
            " WHERE k.tenant_id = c.tenant_id AND k.conversation_id = c.conversation_id"
            f" AND {keyword_match('k.content', keyword, arg)})"
        )
    if after is not None:
        created_at, conversation_id = after
        clauses.append(
            f"(c.created_at, c.conversation_id) < ({arg(created_at)}, {arg(conversation_id)})"
        )
    return " AND ".join(clauses), args


def validate_query(query: ConversationQuery) -> None:
    """``InvalidInput`` unless every filter is well formed and the page size is 1..500."""
    require_name("tenant", query.tenant)
    if query.customer_id is not None:
        require_text("customer_id", query.customer_id, min_len=1, max_len=200)
    if query.phone is not None:
        require_phone(query.phone)
    if query.conversation_id is not None:
        require_text("conversation_id", query.conversation_id, min_len=1, max_len=200)
    if query.created_from is not None:
        require_aware("created_from", query.created_from)
    if query.created_until is not None:
        require_aware("created_until", query.created_until)
    if query.agent_id is not None:
        require_text("agent_id", query.agent_id, min_len=1, max_len=100)
    if query.keyword is not None:
        require_text("keyword", query.keyword, max_len=200)
    size = query.page_size
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {size!r}")


def encode_page_token(created_at: dt.datetime, conversation_id: str) -> str:
    micros = (created_at - _EPOCH) // _MICROSECOND
    raw = json.dumps([micros, conversation_id], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[dt.datetime, str]:
    """The position after which the next page starts; ``InvalidInput`` for a foreign token."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        micros, conversation_id = json.loads(raw)
        if not isinstance(micros, int) or not isinstance(conversation_id, str):
            raise ValueError(token)
        return _EPOCH + micros * _MICROSECOND, conversation_id
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise InvalidInput("the page token is not one this search issued") from exc


@dataclass(frozen=True, slots=True)
class Note:
    note_id: int
    conversation_id: str
    author: str
    body: str
    created_at: dt.datetime


class Records:
    """Read access to conversation records over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def search(self, query: ConversationQuery, page_token: str | None = None) -> Page:
        """One page of the conversations matching ``query``, newest first."""
        validate_query(query)
        after = None if page_token is None else decode_page_token(page_token)
        where, args = _where(query, after)
        sql = (
            f"SELECT {_CONVERSATION_COLUMNS_SQL}"
            " FROM conversations c LEFT JOIN customers cu"
            " ON cu.tenant_id = c.tenant_id AND cu.customer_id = c.customer_id"
            f" WHERE {where}"
            f" ORDER BY c.created_at DESC, c.conversation_id DESC LIMIT {query.page_size + 1}"
        )
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn:
                rows = await conn.fetch(sql, *args, timeout=self._timeout)
        records = tuple(_conversation(r) for r in rows[: query.page_size])
        token = None
        if len(rows) > query.page_size:
            last = records[-1]
            token = encode_page_token(last.created_at, last.conversation_id)
        return Page(records, token)

    async def transcript(self, tenant: str, conversation_id: str) -> tuple[MessageRecord, ...]:
        """Every message of the conversation, oldest first; empty if it has none (or is unknown)."""
        require_name("tenant", tenant)
        require_text("conversation_id", conversation_id, min_len=1, max_len=200)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn:
                rows = await conn.fetch(
                    """SELECT message_id, conversation_id, channel, direction, sender, agent_id,
                              content, attachments, provider_message_id, created_at,
                              choices, selected_option_id, canned_reply_id
                       FROM messages WHERE tenant_id = $1 AND conversation_id = $2
                       ORDER BY created_at, message_id""",
                    tenant,
                    conversation_id,
                    timeout=self._timeout,
                )
        return tuple(message_from_row(r) for r in rows)

    async def add_note(self, tenant: str, conversation_id: str, author: str, body: str) -> Note:
        """Attach an agent's note to a stored conversation; ``InvalidInput`` if there is none."""
        require_name("tenant", tenant)
        require_text("conversation_id", conversation_id, min_len=1, max_len=200)
        require_text("author", author, min_len=1, max_len=200)
        require_text("body", body, min_len=1, max_len=10_000)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn:
                row = await conn.fetchrow(
                    """INSERT INTO conversation_notes (tenant_id, conversation_id, author, body)
                       VALUES ($1, $2, $3, $4) RETURNING note_id, created_at""",
                    tenant,
                    conversation_id,
                    author,
                    body,
                    timeout=self._timeout,
                )
        return Note(row["note_id"], conversation_id, author, body, row["created_at"])

    async def notes(self, tenant: str, conversation_id: str) -> tuple[Note, ...]:
        """The conversation's notes, oldest first."""
        require_name("tenant", tenant)
        with translated_errors():
            async with self._pool.acquire(timeout=self._timeout) as conn:
                rows = await conn.fetch(
                    """SELECT note_id, author, body, created_at FROM conversation_notes
                       WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY note_id""",
                    tenant,
                    conversation_id,
                    timeout=self._timeout,
                )
        return tuple(
            Note(r["note_id"], conversation_id, r["author"], r["body"], r["created_at"])
            for r in rows
        )

    async def export(
        self, query: ConversationQuery, out: TextIO, *, excel_safe: bool = False
    ) -> int:
        """Write every conversation matching ``query`` to ``out`` as CSV (all pages, one header);
        return the number of rows. Rows added meanwhile may or may not appear."""
        writer = csv.writer(out)
        writer.writerow(CONVERSATION_COLUMNS)
        count = 0
        token: str | None = None
        while True:
            page = await self.search(query, token)
            for record in page.records:
                writer.writerow(_cells(conversation_row(record), excel_safe))
            count += len(page.records)
            token = page.next_page_token
            if token is None:
                return count


def _conversation(r: asyncpg.Record) -> ConversationRecord:
    return ConversationRecord(
        conversation_id=r["conversation_id"],
        channel=r["channel"],
        customer_id=r["customer_id"],
        customer_name=r["customer_name"],
        customer_phone=r["customer_phone"],
        state=r["state"],
        queue_id=r["queue_id"],
        owner_agent_id=r["owner_agent_id"],
        last_agent_id=r["last_agent_id"],
        priority=r["priority"],
        outcome=r["outcome"],
        close_reason=r["close_reason"],
        tags=tuple(r["tags"]),
        created_at=r["created_at"],
        queued_at=r["queued_at"],
        assigned_at=r["assigned_at"],
        first_response_at=r["first_response_at"],
        ended_at=r["ended_at"],
        closed_at=r["closed_at"],
    )


def message_from_row(r: asyncpg.Record) -> MessageRecord:
    """A ``messages`` row (all columns of the transcript query) as a record; ``choices``,
    ``selected_option_id`` and ``canned_reply_id`` are read when the query selected them."""
    attachments = tuple(
        Attachment(
            sha256=str(a.get("sha256", "")),
            name=str(a.get("name", "")),
            type=str(a.get("type", "")),
            size=int(a.get("size", 0)),
            uri=str(a.get("uri", "")),
        )
        for a in json.loads(r["attachments"])
    )
    return MessageRecord(
        message_id=r["message_id"],
        conversation_id=r["conversation_id"],
        channel=r["channel"],
        direction=r["direction"],
        sender=r["sender"],
        agent_id=r["agent_id"],
        content=r["content"],
        attachments=attachments,
        provider_message_id=r["provider_message_id"],
        created_at=r["created_at"],
        choices=message_choices.from_json(r.get("choices")),
        selected_option_id=r.get("selected_option_id") or "",
        canned_reply_id=r.get("canned_reply_id"),
    )


# --- CSV ---------------------------------------------------------------------------------------

CONVERSATION_COLUMNS: Final = (
    "conversation_id",
    "channel",
    "customer_id",
    "customer_name",
    "customer_phone",
    "state",
    "queue_id",
    "owner_agent_id",
    "last_agent_id",
    "priority",
    "outcome",
    "close_reason",
    "tags",
    "created_at",
    "queued_at",
    "assigned_at",
    "first_response_at",
    "ended_at",
    "closed_at",
)
"""One row per conversation. Missing values are empty; times are ISO 8601 in UTC; ``tags`` is a
JSON array of strings."""

TRANSCRIPT_COLUMNS: Final = (
    "conversation_id",
    "message_id",
    "created_at",
    "direction",
    "sender",
    "agent_id",
    "channel",
    "content",
    "attachments",
    "provider_message_id",
)
"""One row per message, oldest first. ``attachments`` is a JSON array of
``{sha256, name, type, size, uri}``; ``content`` is verbatim (newlines included, quoted)."""

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def conversation_row(r: ConversationRecord) -> list[str]:
    """``r``'s cells in ``CONVERSATION_COLUMNS`` order."""
    cells: list[object] = [
        r.conversation_id,
        r.channel,
        r.customer_id,
        r.customer_name,
        r.customer_phone,
        r.state,
        r.queue_id,
        r.owner_agent_id,
        r.last_agent_id,
        r.priority,
        r.outcome,
        r.close_reason,
        json.dumps(list(r.tags), ensure_ascii=False),
        r.created_at,
        r.queued_at,
        r.assigned_at,
        r.first_response_at,
        r.ended_at,
        r.closed_at,
    ]
    return [_text(c) for c in cells]


def message_row(m: MessageRecord) -> list[str]:
    """``m``'s cells in ``TRANSCRIPT_COLUMNS`` order."""
    attachments = [
        {"sha256": a.sha256, "name": a.name, "type": a.type, "size": a.size, "uri": a.uri}
        for a in m.attachments
    ]
    cells: list[object] = [
        m.conversation_id,
        m.message_id,
        m.created_at,
        m.direction,
        m.sender,
        m.agent_id,
        m.channel,
        m.content,
        json.dumps(attachments, ensure_ascii=False),
        m.provider_message_id,
    ]
    return [_text(c) for c in cells]


def _cells(row: list[str], excel_safe: bool) -> list[str]:
    """With ``excel_safe``, a cell a spreadsheet would run as a formula gets a leading ``'``
    (this changes the data: leave it off when the CSV is read back by programs)."""
    if not excel_safe:
        return row
    return ["'" + c if c.startswith(_FORMULA_STARTS) else c for c in row]


def write_conversations_csv(
    records: Iterable[ConversationRecord], out: TextIO, *, excel_safe: bool = False
) -> int:
    """Write a header and one row per record to ``out`` (open it with ``newline=""`` and a
    UTF-8 encoding; ``utf-8-sig`` for Excel); return the number of rows."""
    writer = csv.writer(out)
    writer.writerow(CONVERSATION_COLUMNS)
    count = 0
    for record in records:
        writer.writerow(_cells(conversation_row(record), excel_safe))
        count += 1
    return count


def write_transcript_csv(
    messages: Iterable[MessageRecord], out: TextIO, *, excel_safe: bool = False
) -> int:
    """Like ``write_conversations_csv``, for a transcript's messages."""
    writer = csv.writer(out)
    writer.writerow(TRANSCRIPT_COLUMNS)
    count = 0
    for message in messages:
        writer.writerow(_cells(message_row(message), excel_safe))
        count += 1
    return count


def conversations_csv(records: Iterable[ConversationRecord], *, excel_safe: bool = False) -> str:
    out = io.StringIO(newline="")
    write_conversations_csv(records, out, excel_safe=excel_safe)
    return out.getvalue()


def transcript_csv(messages: Iterable[MessageRecord], *, excel_safe: bool = False) -> str:
    out = io.StringIO(newline="")
    write_transcript_csv(messages, out, excel_safe=excel_safe)
    return out.getvalue()
