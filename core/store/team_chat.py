"""Internal chat between a tenant's agents: threads, members and messages (migration 0024).

Messages are numbered per tenant (``team_chat_counters``): the counter's row is locked from
taking a number to the commit, so numbers commit in order and a reader of "after id N" sees a
prefix, never a hole that a slower writer fills later. Streams rely on that (``after``).
Only members read or write a thread: every read here takes the reader and answers as if a
thread the reader is not in did not exist. Members must be live agents of the tenant.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import asyncpg

from core.store.errors import translated_errors

MAX_TEXT: Final = 4_000
MAX_MEMBERS: Final = 50
MAX_TITLE: Final = 200


class ThreadKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"


class MessageKind(StrEnum):
    TEXT = "text"
    THREAD_CREATED = "thread_created"


@dataclass(frozen=True, slots=True)
class TeamMessage:
    message_id: int
    thread_id: str
    sender: str
    kind: MessageKind
    text: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    kind: ThreadKind
    title: str
    creator: str
    members: tuple[str, ...]
    """Agent ids, sorted."""
    created_at: dt.datetime
    last: TeamMessage | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message and the agents it goes to (its thread's members when it was read)."""

    message: TeamMessage
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class Colleague:
    agent_id: str
    display_name: str
    departments: tuple[str, ...]
    status: str
    custom_status: str | None


class UnknownMembers(Exception):
    """Members that are no live agents of the tenant; nothing was written."""

    def __init__(self, agents: Sequence[str]) -> None:
        super().__init__(f"not agents of the tenant: {', '.join(agents)}")
        self.agents = tuple(agents)


class _Duplicate(Exception):
    def __init__(self, found: TeamMessage) -> None:
        self.found = found


def _message(row: asyncpg.Record) -> TeamMessage:
    return TeamMessage(
        row["message_id"],
        row["thread_id"],
        row["sender"],
        MessageKind(row["kind"]),
        row["body"],
        row["created_at"],
    )


_MESSAGE: Final = "m.message_id, m.thread_id, m.sender, m.kind, m.body, m.created_at"
_THREAD: Final = f"""
SELECT t.thread_id AS t_thread_id, t.kind AS t_kind, t.title, t.creator,
       t.created_at AS t_created_at,
       array(SELECT agent_id FROM team_thread_members x
             WHERE x.tenant_id = t.tenant_id AND x.thread_id = t.thread_id
             ORDER BY agent_id) AS members,
       {_MESSAGE}
FROM team_threads t
LEFT JOIN team_messages m
    ON m.tenant_id = t.tenant_id AND m.message_id = t.last_message_id
"""


def _thread(row: asyncpg.Record) -> Thread:
    last = _message(row) if row["message_id"] is not None else None
    return Thread(
        row["t_thread_id"],
        ThreadKind(row["t_kind"]),
        row["title"],
        row["creator"],
        tuple(row["members"]),
        row["t_created_at"],
        last,
    )


class TeamChat:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- writing -------------------------------------------------------------------------------

    @staticmethod
    async def _number(conn: asyncpg.Connection, tenant: str) -> int:
        """The tenant's next message id; the counter stays locked until the commit."""
        number: int = await conn.fetchval(
            "INSERT INTO team_chat_counters (tenant_id, last_message_id) VALUES ($1, 1)"
            " ON CONFLICT (tenant_id) DO UPDATE"
            " SET last_message_id = team_chat_counters.last_message_id + 1"
            " RETURNING last_message_id",
            tenant,
        )
        return number

    @staticmethod
    async def _insert(
        conn: asyncpg.Connection,
        tenant: str,
        number: int,
        thread_id: str,
        sender: str,
        kind: MessageKind,
        text: str,
        request_id: str | None,
    ) -> TeamMessage:
        row = await conn.fetchrow(
            "WITH m AS (INSERT INTO team_messages"
            " (tenant_id, message_id, thread_id, sender, kind, body, request_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *),"
            " t AS (UPDATE team_threads SET last_message_id = $2"
            "       WHERE tenant_id = $1 AND thread_id = $3)"
            f" SELECT {_MESSAGE} FROM m",
            tenant,
            number,
            thread_id,
            sender,
            kind.value,
            text,
            request_id,
        )
        assert row is not None
        return _message(row)

    async def _check_members(
        self, conn: asyncpg.Connection, tenant: str, members: Sequence[str]
    ) -> None:
        found = await conn.fetch(
            "SELECT agent_id FROM agents WHERE tenant_id = $1 AND agent_id = ANY($2::text[])"
            " AND removed_at IS NULL",
            tenant,
            list(members),
        )
        missing = sorted(set(members) - {r["agent_id"] for r in found})
        if missing:
            raise UnknownMembers(missing)

    async def create(
        self, tenant: str, creator: str, kind: ThreadKind, others: Sequence[str], title: str
    ) -> tuple[Thread, bool]:
        """Create a thread of ``creator`` and ``others`` (a DIRECT one: exactly one other, and
        the pair's existing thread is answered instead if there is one): (the thread, whether it
        was created). A new thread gets its THREAD_CREATED message. ``UnknownMembers`` if a
        member is no live agent of the tenant."""
        members = sorted({creator, *others})
        if kind is ThreadKind.DIRECT and len(members) != 2:
            raise ValueError("a direct thread has two members")
        direct_key = "\n".join(members) if kind is ThreadKind.DIRECT else None
        thread_id = secrets.token_hex(8)
        with translated_errors():
            async with self._pool.acquire() as conn, conn.transaction():
                await self._check_members(conn, tenant, members)
                inserted = await conn.fetchval(
                    "INSERT INTO team_threads (tenant_id, thread_id, kind, title, creator,"
                    " direct_key) VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT (tenant_id, direct_key) DO NOTHING RETURNING thread_id",
                    tenant,
                    thread_id,
                    kind.value,
                    title if kind is ThreadKind.GROUP else "",
                    creator,
                    direct_key,
                )
                if inserted is None:  # the pair's thread exists
                    existing = await conn.fetchval(
                        "SELECT thread_id FROM team_threads"
                        " WHERE tenant_id = $1 AND direct_key = $2",
                        tenant,
                        direct_key,
                    )
                    thread_id, created = existing, False
                else:
                    await conn.executemany(
                        "INSERT INTO team_thread_members (tenant_id, thread_id, agent_id)"
                        " VALUES ($1, $2, $3)",
                        [(tenant, thread_id, member) for member in members],
                    )
                    await self._insert(
                        conn,
                        tenant,
                        await self._number(conn, tenant),
                        thread_id,
                        creator,
                        MessageKind.THREAD_CREATED,
                        title if kind is ThreadKind.GROUP else "",
                        None,
                    )
                    created = True
                row = await conn.fetchrow(
                    f"{_THREAD} WHERE t.tenant_id = $1 AND t.thread_id = $2", tenant, thread_id
                )
        assert row is not None
        return _thread(row), created

    async def send(
        self, tenant: str, thread_id: str, sender: str, text: str, request_id: str | None
    ) -> tuple[TeamMessage, bool] | None:
        """Store ``sender``'s message in the thread: (the message, whether it is the original
        of a repeated ``request_id``); None when the thread is not ``sender``'s."""
        try:
            with translated_errors():
                async with self._pool.acquire() as conn, conn.transaction():
                    member = await conn.fetchval(
                        "SELECT true FROM team_thread_members"
                        " WHERE tenant_id = $1 AND thread_id = $2 AND agent_id = $3",
                        tenant,
                        thread_id,
                        sender,
                    )
                    if not member:
                        return None
                    number = await self._number(conn, tenant)
                    if request_id is not None:
                        # under the counter's lock: no other writer of the tenant races this
                        found = await conn.fetchrow(
                            f"SELECT {_MESSAGE} FROM team_messages m WHERE m.tenant_id = $1"
                            " AND m.sender = $2 AND m.request_id = $3",
                            tenant,
                            sender,
                            request_id,
                        )
                        if found is not None:
                            raise _Duplicate(_message(found))  # gives the number back
                    stored = await self._insert(
                        conn, tenant, number, thread_id, sender, MessageKind.TEXT, text, request_id
                    )
                    return stored, False
        except _Duplicate as repeat:
            return repeat.found, True

    # --- reading -------------------------------------------------------------------------------

    async def thread(self, tenant: str, thread_id: str, reader: str) -> Thread | None:
        """The thread, if ``reader`` is a member."""
        with translated_errors():
            row = await self._pool.fetchrow(
                f"{_THREAD} WHERE t.tenant_id = $1 AND t.thread_id = $2 AND EXISTS"
                " (SELECT 1 FROM team_thread_members x WHERE x.tenant_id = $1"
                "  AND x.thread_id = $2 AND x.agent_id = $3)",
                tenant,
                thread_id,
                reader,
            )
        return None if row is None else _thread(row)

    async def threads(
        self, tenant: str, reader: str, after: tuple[int, str] | None, limit: int
    ) -> list[Thread]:
        """``reader``'s threads, the latest message first (then by id), after the keyset
        position ``after`` (last message id, thread id)."""
        last, thread = after if after is not None else (None, None)
        with translated_errors():
            rows = await self._pool.fetch(
                f"{_THREAD} JOIN team_thread_members r ON r.tenant_id = t.tenant_id"
                " AND r.thread_id = t.thread_id AND r.agent_id = $2"
                " WHERE t.tenant_id = $1 AND ($3::bigint IS NULL"
                "   OR (t.last_message_id, t.thread_id) < ($3::bigint, $4::text))"
                " ORDER BY t.last_message_id DESC, t.thread_id DESC LIMIT $5",
                tenant,
                reader,
                last,
                thread,
                limit,
            )
        return [_thread(r) for r in rows]

    async def messages(
        self, tenant: str, thread_id: str, before: int | None, limit: int
    ) -> list[TeamMessage]:
        """The thread's messages older than id ``before`` (None: from the newest), newest
        first. The caller has checked that the reader is a member (``thread``)."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_MESSAGE} FROM team_messages m WHERE m.tenant_id = $1"
                " AND m.thread_id = $2 AND ($3::bigint IS NULL OR m.message_id < $3)"
                " ORDER BY m.message_id DESC LIMIT $4",
                tenant,
                thread_id,
                before,
                limit,
            )
        return [_message(r) for r in rows]

    async def after(
        self, tenant: str, after: int, limit: int, *, reader: str | None = None
    ) -> list[Delivery]:
        """The tenant's messages after id ``after``, by id, each with its thread's members; only
        those of ``reader``'s threads when given."""
        with translated_errors():
            rows = await self._pool.fetch(
                f"SELECT {_MESSAGE}, array(SELECT agent_id FROM team_thread_members x"
                "   WHERE x.tenant_id = m.tenant_id AND x.thread_id = m.thread_id) AS members"
                " FROM team_messages m WHERE m.tenant_id = $1 AND m.message_id > $2"
                " AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM team_thread_members r"
                "   WHERE r.tenant_id = m.tenant_id AND r.thread_id = m.thread_id"
                "   AND r.agent_id = $4))"
                " ORDER BY m.message_id LIMIT $3",
                tenant,
                after,
                limit,
                reader,
            )
        return [Delivery(_message(r), frozenset(r["members"])) for r in rows]

    async def last_id(self, tenant: str) -> int:
        """The tenant's newest message id (0: none yet)."""
        with translated_errors():
            found = await self._pool.fetchval(
                "SELECT last_message_id FROM team_chat_counters WHERE tenant_id = $1", tenant
            )
        return int(found or 0)

    async def colleagues(
        self, tenant: str, department: str | None, after: str, limit: int
    ) -> list[Colleague]:
        """The tenant's live agents (of ``department`` when given) whose id sorts after
        ``after``, by id, with their stored status."""
        with translated_errors():
            rows = await self._pool.fetch(
                "SELECT agent_id, coalesce(profile ->> 'name', '') AS display_name,"
                " array(SELECT jsonb_array_elements_text(coalesce(profile -> 'departments',"
                "   '[]'::jsonb)) ORDER BY 1) AS departments, status, custom_status"
                " FROM agents WHERE tenant_id = $1 AND removed_at IS NULL AND agent_id > $2"
                " AND ($3::text IS NULL OR coalesce(profile -> 'departments', '[]'::jsonb) ? $3)"
                " ORDER BY agent_id LIMIT $4",
                tenant,
                after,
                department,
                limit,
            )
        return [
            Colleague(
                r["agent_id"],
                r["display_name"],
                tuple(r["departments"]),
                r["status"],
                r["custom_status"],
            )
            for r in rows
        ]
