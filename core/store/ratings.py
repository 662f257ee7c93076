"""Satisfaction ratings as stored (migration 0025): the engine's ``ConversationRated`` events,
projected into ``conversation_ratings`` by the event log's append. Read-only here: ``listed``
pages through a tenant's ratings, newest first; ``of`` finds one conversation's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredRating:
    conversation_id: str
    channel: str
    queue_id: str
    agent_id: str
    score: int
    comment: str
    rated_at: dt.datetime


_COLUMNS = "conversation_id, channel, queue_id, agent_id, score, comment, rated_at"


def _rating(row: asyncpg.Record) -> StoredRating:
    return StoredRating(
        row["conversation_id"],
        row["channel"],
        row["queue_id"],
        row["agent_id"],
        int(row["score"]),
        row["comment"],
        row["rated_at"],
    )


async def of(
    pool: asyncpg.Pool | asyncpg.Connection, tenant: str, conversation_id: str
) -> StoredRating | None:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM conversation_ratings"
        " WHERE tenant_id = $1 AND conversation_id = $2",
        tenant,
        conversation_id,
    )
    return None if row is None else _rating(row)


async def listed(
    pool: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    *,
    channel: str = "",
    limit: int = 100,
    after: tuple[dt.datetime, str] | None = None,
) -> list[StoredRating]:
    """Up to ``limit`` ratings (of ``channel`` if given), newest first, after the
    (rated_at, conversation) of the last one of the previous page."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM conversation_ratings
            WHERE tenant_id = $1 AND ($2 = '' OR channel = $2)
              AND ($3::timestamptz IS NULL OR (rated_at, conversation_id) < ($3, $4))
            ORDER BY rated_at DESC, conversation_id DESC LIMIT $5""",
        tenant,
        channel,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    return [_rating(r) for r in rows]
