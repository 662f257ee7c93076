"""Periodic store upkeep that ``usher serve`` runs in the background: purging customers that
stayed in the recycle bin past ``USHER_CUSTOMER_RETENTION_DAYS``
(``core.store.customer_records.purge_deleted``, hourly), and recording blocks whose expiry
passed in the blocklist's change log (``core.store.block_events.record_expiries``, every
``SWEEP_EVERY`` seconds, so WatchBlocks shows an expiry within that long), and moving reports'
facts of hours that are over into their rollups (``core.store.rollups.compact_due``, every
``COMPACT_EVERY`` seconds; a fact is counted in one table or the other at any time, so a round
missed or run twice changes no figure), and deleting console sessions' credentials gone for
30 days (``core.store.sessions.Sessions.purge``, hourly; the sign-in log keeps their history).

One process per deployment runs it (the single ``usher serve``, or worker 0 of
``--workers N``): both chores are idempotent (a DELETE; stamping each expiry once under the
tenant's lock), so two running at once would be harmless, only wasteful. A failed round is
logged and tried again at the next one; it never stops serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
import structlog

from core.store.block_events import record_expiries
from core.store.customer_records import purge_deleted
from core.store.rollups import compact_due
from core.store.sessions import Sessions

log = structlog.get_logger(__name__)

PURGE_EVERY: Final = 3600.0
"""Seconds between purges (the first runs at start)."""
SWEEP_EVERY: Final = 5.0
"""Seconds between sweeps for expired blocks (the first runs at start)."""
COMPACT_EVERY: Final = 60.0
"""Seconds between compactions of reports' facts (the first runs at start)."""


async def purge_once(pool: asyncpg.Pool) -> int:
    """Purge the recycle bin once; how many customers went (logged when any did)."""
    purged = await purge_deleted(pool)
    if purged:
        log.info("purged deleted customers past their retention", customers=purged)
    return purged


async def sweep_once(pool: asyncpg.Pool) -> int:
    """Record the blocks whose expiry passed since the last sweep; how many."""
    return await record_expiries(pool)


async def _forever(chore: Callable[[], Awaitable[object]], every: float, what: str) -> None:
    """``chore`` now and then every ``every`` seconds until cancelled; a round that fails is
    logged and the loop goes on."""
    while True:
        try:
            await chore()
        except Exception:
            log.exception(f"{what} failed; trying again later")
        await asyncio.sleep(every)


async def purge_forever(pool: asyncpg.Pool, every: float = PURGE_EVERY) -> None:
    """``purge_once`` now and then every ``every`` seconds until cancelled."""
    await _forever(lambda: purge_once(pool), every, "purging deleted customers")


async def sweep_forever(pool: asyncpg.Pool, every: float = SWEEP_EVERY) -> None:
    """``sweep_once`` now and then every ``every`` seconds until cancelled."""
    await _forever(lambda: sweep_once(pool), every, "recording expired blocks")


async def compact_forever(pool: asyncpg.Pool, every: float = COMPACT_EVERY) -> None:
    """``compact_due`` now and then every ``every`` seconds until cancelled."""
    await _forever(lambda: compact_due(pool), every, "compacting reports' facts")


async def purge_sessions_forever(pool: asyncpg.Pool, every: float = PURGE_EVERY) -> None:
    """``Sessions.purge`` now and then every ``every`` seconds until cancelled."""
    await _forever(lambda: Sessions(pool).purge(), every, "purging ended console sessions")


async def _all(pool: asyncpg.Pool, every: float, sweep_every: float) -> None:
    async with asyncio.TaskGroup() as chores:
        chores.create_task(purge_forever(pool, every))
        chores.create_task(purge_sessions_forever(pool, every))
        chores.create_task(sweep_forever(pool, sweep_every))
        chores.create_task(compact_forever(pool))


def start(
    pool: asyncpg.Pool, every: float = PURGE_EVERY, *, sweep_every: float = SWEEP_EVERY
) -> asyncio.Task[None]:
    """The background upkeep task, purging every ``every`` seconds and sweeping expired blocks
    every ``sweep_every`` (cancel it to stop both)."""
    return asyncio.create_task(_all(pool, every, sweep_every), name="usher-housekeeping")
