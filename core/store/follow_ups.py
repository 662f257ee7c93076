"""What FollowUpService reads and writes beside the shard: the left messages (conversations
closed as ``left_message``) with their handled flag (``left_messages_handled``, written here
alone), the customer's last inbound message time (a channel's reply window), and a customer's
identity on a channel.

Left messages page by keyset: unhandled first, then the most recently closed first, then by id.
A page token (``encode_position``) holds the last row's place and a fingerprint of the list it
came from (its filter and reader), and is refused for any other list.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store.errors import InvalidInput, translated_errors
from core.store.reads import CONVERSATION_SQL

_WITH_TENANT: Final = CONVERSATION_SQL.replace(
    "SELECT c.conversation_id", "SELECT c.tenant_id, c.conversation_id", 1
)

_LEFT_SQL: Final = f"""
SELECT l.*, h.handled_at, h.handled_by,
       (SELECT max(g.created_at) FROM messages g
        WHERE g.tenant_id = l.tenant_id AND g.conversation_id = l.conversation_id
          AND g.direction = 'inbound') AS last_inbound_at
FROM ({_WITH_TENANT}
      WHERE c.tenant_id = $1 AND c.close_reason = 'left_message' AND c.state = 'closed') l
LEFT JOIN left_messages_handled h
  ON h.tenant_id = l.tenant_id AND h.conversation_id = l.conversation_id
"""
"""Left messages of tenant $1 (rows of ``CONVERSATION_SQL`` and the flag's columns)."""


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)
_CLOSED: Final = "coalesce(l.closed_at, l.created_at)"
"""When a left message was closed (its start, should a row lack the time)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page of left messages ends: the last row's sort key."""

    handled: bool
    closed_at: dt.datetime
    conversation_id: str

    @staticmethod
    def of(row: asyncpg.Record) -> Position:
        return Position(
            row["handled_at"] is not None,
            row["closed_at"] or row["created_at"],
            row["conversation_id"],
        )


def fingerprint(*scope: object) -> str:
    """A short digest of what a list is (its filter, its reader): a token is valid for it only."""
    return hashlib.sha256(repr(scope).encode()).hexdigest()[:16]


def encode_position(position: Position, list_fingerprint: str) -> str:
    """An opaque page token for ``position`` in the list ``list_fingerprint`` names."""
    raw = json.dumps(
        [
            list_fingerprint,
            int(position.handled),
            (position.closed_at - _EPOCH) // _MICROSECOND,
            position.conversation_id,
        ],
        ensure_ascii=False,
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_position(token: str, list_fingerprint: str) -> Position:
    """The position a token holds; ``InvalidInput`` for one that list did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        found, handled, micros, conversation_id = json.loads(raw)
        if (
            found != list_fingerprint
            or handled not in (0, 1)
            or not isinstance(micros, int)
            or not isinstance(conversation_id, str)
        ):
            raise ValueError("a token of another list")
        return Position(bool(handled), _EPOCH + micros * _MICROSECOND, conversation_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("the page token is not one this list issued") from exc


@dataclass(frozen=True, slots=True)
class Identity:
    """A customer's identity on a channel, and how consoles show them."""

    external_id: str
    name: str
    phone: str
    email: str


class FollowUps:
    """The left messages' flags and the reads follow-ups need, over a pool."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 10.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def left_messages(
        self,
        tenant: str,
        *,
        queues: Sequence[str] | None,
        unhandled_only: bool,
        after: Position | None,
        size: int,
    ) -> list[asyncpg.Record]:
        """Up to ``size`` left messages after ``after`` (None: from the first), unhandled
        first, then the most recently closed first, then by id; of ``queues`` only when given.
        Rows of ``CONVERSATION_SQL`` with ``handled_at``, ``handled_by`` and
        ``last_inbound_at``."""
        with translated_errors():
            return list(
                await self._pool.fetch(
                    f"""{_LEFT_SQL}
                        WHERE ($2::text[] IS NULL OR l.queue_id = ANY($2::text[]))
                          AND (NOT $3 OR h.handled_at IS NULL)
                          AND ($4::boolean IS NULL
                               OR (h.handled_at IS NOT NULL) > $4
                               OR ((h.handled_at IS NOT NULL) = $4
                                   AND ({_CLOSED} < $5
                                        OR ({_CLOSED} = $5 AND l.conversation_id > $6))))
                        ORDER BY h.handled_at IS NOT NULL, {_CLOSED} DESC, l.conversation_id
                        LIMIT $7""",
                    tenant,
                    None if queues is None else list(queues),
                    unhandled_only,
                    None if after is None else after.handled,
                    None if after is None else after.closed_at,
                    None if after is None else after.conversation_id,
                    size,
                    timeout=self._timeout,
                )
            )

    async def left_message(self, tenant: str, conversation_id: str) -> asyncpg.Record | None:
        """One left message (as ``left_messages``' rows), or None if it is not one."""
        with translated_errors():
            row: asyncpg.Record | None = await self._pool.fetchrow(
                f"{_LEFT_SQL} WHERE l.conversation_id = $2",
                tenant,
                conversation_id,
                timeout=self._timeout,
            )
        return row

    async def mark(self, tenant: str, conversation_id: str, *, handled: bool, by: str) -> None:
        """Set (keeping the first time and who) or clear a conversation's handled flag."""
        with translated_errors():
            if handled:
                await self._pool.execute(
                    """INSERT INTO left_messages_handled (tenant_id, conversation_id, handled_by)
                       VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
                    tenant,
                    conversation_id,
                    by,
                    timeout=self._timeout,
                )
            else:
                await self._pool.execute(
                    """DELETE FROM left_messages_handled
                       WHERE tenant_id = $1 AND conversation_id = $2""",
                    tenant,
                    conversation_id,
                    timeout=self._timeout,
                )

    async def last_inbound(self, tenant: str, customer_id: str, channel: str) -> dt.datetime | None:
        """When the customer last wrote on the channel (any conversation), or None."""
        with translated_errors():
            found: dt.datetime | None = await self._pool.fetchval(
                """SELECT max(g.created_at) FROM conversations c
                   JOIN messages g ON g.tenant_id = c.tenant_id
                    AND g.conversation_id = c.conversation_id AND g.direction = 'inbound'
                   WHERE c.tenant_id = $1 AND c.customer_id = $2 AND c.channel = $3""",
                tenant,
                customer_id,
                channel,
                timeout=self._timeout,
            )
        return found

    async def identity(self, tenant: str, customer_id: str, channel: str) -> Identity | None:
        """The customer's identity on the channel, or None (no such customer or identity)."""
        with translated_errors():
            row = await self._pool.fetchrow(
                """SELECT i.external_id, c.name, coalesce(c.phone, '') AS phone,
                          coalesce(c.email, '') AS email
                   FROM customer_identities i
                   JOIN customers c ON c.tenant_id = i.tenant_id AND c.customer_id = i.customer_id
                   WHERE i.tenant_id = $1 AND i.customer_id = $2 AND i.channel = $3
                   ORDER BY i.external_id LIMIT 1""",
                tenant,
                customer_id,
                channel,
                timeout=self._timeout,
            )
        if row is None:
            return None
        return Identity(row["external_id"], row["name"], row["phone"], row["email"])
