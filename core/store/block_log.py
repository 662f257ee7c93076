"""The write side of the blocklist's change log (``block_events``; read by
``core.store.block_events``): ``append`` writes changes in the caller's transaction, the one that
makes them, numbering them per tenant 1, 2, 3... in commit order. It takes the tenant's advisory
lock first, so writers number in turn and a number becomes visible only once every smaller one
is; and it notifies ``CHANNEL`` (delivered at commit) so front doors read the change at once.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Final

import asyncpg

CHANNEL: Final = "usher_block_events"
"""The PostgreSQL notification channel; the payload is the tenant."""
_LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(hashtext('usher.blocks:' || $1))"


class Change(StrEnum):
    CREATED = "created"
    UNBLOCKED = "unblocked"
    EXPIRED = "expired"


async def append(
    conn: asyncpg.Connection,
    tenant: str,
    changes: list[tuple[int, Change, dt.datetime, str]],
) -> None:
    """Append (block id, change, at, actor) rows, in order, inside the caller's transaction."""
    if not changes:
        return
    await conn.execute(_LOCK_SQL, tenant)
    head: int = await conn.fetchval(
        "SELECT coalesce(max(seq), 0) FROM block_events WHERE tenant_id = $1", tenant
    )
    await conn.executemany(
        "INSERT INTO block_events (tenant_id, seq, block_id, change, at, actor)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [
            (tenant, head + i, block_id, str(change), at, actor)
            for i, (block_id, change, at, actor) in enumerate(changes, start=1)
        ],
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, tenant)


async def lock(conn: asyncpg.Connection, tenant: str) -> None:
    """Take the tenant's log lock now, before any row the transaction changes: every writer of
    blocks takes it first, so they never wait for each other in opposite orders."""
    await conn.execute(_LOCK_SQL, tenant)
