"""What the store already holds of a batch's idempotency keys, for the shard that decides.

The shard is the one writer of messages and conversations, so under its lock this read is
authoritative: a key found here was committed; a key not found was not (and cannot be while
the shard holds the tenant). It serves the keys the engine no longer remembers (conversations
that left memory after their retention). One round trip for the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from core.store.errors import translated_errors

_RECORDED_SQL = """
SELECT 'message' AS kind, m.channel, m.provider_message_id AS key, m.message_id,
       m.conversation_id
FROM messages m
JOIN unnest($2::text[], $3::text[]) AS k(channel, key)
  ON m.channel = k.channel AND m.provider_message_id = k.key
WHERE m.tenant_id = $1
UNION ALL
SELECT 'conversation', '', c.conversation_id, 0, c.conversation_id
FROM conversations c
WHERE c.tenant_id = $1 AND c.conversation_id = ANY($4::text[])"""


@dataclass(frozen=True, slots=True)
class Recorded:
    messages: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    """(channel, key) -> (message id, conversation id) of messages already stored."""
    conversations: frozenset[str] = frozenset()
    """Conversation ids already stored."""


async def recorded(
    pool: asyncpg.Pool,
    tenant: str,
    message_keys: Iterable[tuple[str, str]],
    conversation_ids: Iterable[str],
    *,
    timeout: float = 5.0,
) -> Recorded:
    keys = list(dict.fromkeys(message_keys))
    ids = list(dict.fromkeys(conversation_ids))
    if not keys and not ids:
        return Recorded()
    with translated_errors():
        rows = await pool.fetch(
            _RECORDED_SQL,
            tenant,
            [channel for channel, _ in keys],
            [key for _, key in keys],
            ids,
            timeout=timeout,
        )
    messages = {
        (r["channel"], r["key"]): (r["message_id"], r["conversation_id"])
        for r in rows
        if r["kind"] == "message"
    }
    found = frozenset(r["key"] for r in rows if r["kind"] == "conversation")
    return Recorded(messages, found)


async def highest_message_id(pool: asyncpg.Pool, tenant: str, *, timeout: float = 5.0) -> int:
    """The tenant's highest stored message id (0 if none): numbering continues above it."""
    with translated_errors():
        found: int | None = await pool.fetchval(
            "SELECT max(message_id) FROM messages WHERE tenant_id = $1", tenant, timeout=timeout
        )
    return found or 0
