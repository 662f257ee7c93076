"""The blocklist's change log (``block_events``): each block's creation, unblocking and expiry,
numbered per tenant 1, 2, 3... in commit order, so a reader that has seen up to N and reads
what is after N misses nothing.

- ``core.store.block_log.append`` writes a change in the transaction that makes it
  (``core.store.blocklist``: create, unblock; the sweep below: expiry).
- ``record_expiries`` is the expiry sweep (``core.housekeeping`` runs it every few seconds): a
  block whose ``expires_at`` passed is stamped (``blocks.expiry_recorded_at``) and its change
  appended, once, in one transaction per tenant. A block stops matching at ``expires_at``
  whatever the sweep does; the sweep only records it.
- ``after`` reads the changes after a number; each carries the block as that change left it
  (the block's own columns never change after creation but for its end, which the change
  itself states), so reading the log again shows the same thing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.store.block_log import Change, append, lock
from core.store.blocklist import Block, Kind
from core.store.errors import translated_errors


@dataclass(frozen=True, slots=True)
class BlockEvent:
    seq: int
    change: Change
    at: dt.datetime
    """When the change took effect (an expiry: the block's ``expires_at``)."""
    block: Block
    """The block as the change left it."""


async def head(pool: asyncpg.Pool | asyncpg.Connection, tenant: str) -> int:
    """The number of the tenant's last change (0: none)."""
    with translated_errors():
        found: int = await pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM block_events WHERE tenant_id = $1", tenant
        )
    return found


_AFTER: Final = """
SELECT e.seq, e.change, e.at, e.actor, b.block_id, b.kind, b.value, b.reason, b.created_at,
       b.created_by, b.expires_at
FROM block_events e
JOIN blocks b ON b.tenant_id = e.tenant_id AND b.block_id = e.block_id
WHERE e.tenant_id = $1 AND e.seq > $2
ORDER BY e.seq LIMIT $3"""


async def after(pool: asyncpg.Pool, tenant: str, seq: int, limit: int) -> list[BlockEvent]:
    """Up to ``limit`` of the tenant's changes after number ``seq``, in order."""
    with translated_errors():
        rows = await pool.fetch(_AFTER, tenant, seq, limit)
    return [_event(r) for r in rows]


def _event(r: asyncpg.Record) -> BlockEvent:
    change = Change(r["change"])
    ended = change is Change.UNBLOCKED
    block = Block(
        r["block_id"],
        Kind(r["kind"]),
        r["value"],
        r["reason"],
        r["created_at"],
        r["created_by"],
        r["expires_at"],
        r["at"] if ended else None,
        r["actor"] if ended else None,
    )
    return BlockEvent(r["seq"], change, r["at"], block)


async def record_expiries(pool: asyncpg.Pool) -> int:
    """Record every tenant's blocks whose expiry passed and is not recorded yet (see the
    module docstring); how many."""
    recorded = 0
    with translated_errors():
        tenants = await pool.fetch(
            """SELECT DISTINCT tenant_id FROM blocks
               WHERE unblocked_at IS NULL AND expires_at IS NOT NULL
                 AND expiry_recorded_at IS NULL AND expires_at <= now()"""
        )
        for row in tenants:
            tenant = row["tenant_id"]
            async with pool.acquire() as conn, conn.transaction():
                await lock(conn, tenant)
                due = await conn.fetch(
                    """UPDATE blocks SET expiry_recorded_at = now()
                       WHERE tenant_id = $1 AND unblocked_at IS NULL
                         AND expires_at IS NOT NULL AND expiry_recorded_at IS NULL
                         AND expires_at <= now()
                       RETURNING block_id, expires_at""",
                    tenant,
                )
                ordered = sorted(due, key=lambda d: (d["expires_at"], d["block_id"]))
                await append(
                    conn,
                    tenant,
                    [(d["block_id"], Change.EXPIRED, d["expires_at"], "") for d in ordered],
                )
            recorded += len(due)
    return recorded
