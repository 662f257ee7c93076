"""Periodic store upkeep that ``usher serve`` runs in the background: for now, purging customers
that stayed in the recycle bin past ``USHER_CUSTOMER_RETENTION_DAYS``
(``core.store.customer_records.purge_deleted``).

One process per deployment runs it (the single ``usher serve``, or worker 0 of
``--workers N``): the purge is one idempotent DELETE, so two running at once would be harmless,
only wasteful. A failed round is logged and tried again at the next one; it never stops serving.
"""

from __future__ import annotations

import asyncio
from typing import Final

import asyncpg
import structlog

from core.store.customer_records import purge_deleted

log = structlog.get_logger(__name__)

PURGE_EVERY: Final = 3600.0
"""Seconds between purges (the first runs at start)."""


async def purge_once(pool: asyncpg.Pool) -> int:
    """Purge the recycle bin once; how many customers went (logged when any did)."""
    purged = await purge_deleted(pool)
    if purged:
        log.info("purged deleted customers past their retention", customers=purged)
    return purged


async def purge_forever(pool: asyncpg.Pool, every: float = PURGE_EVERY) -> None:
    """``purge_once`` now and then every ``every`` seconds until cancelled; a round that fails
    is logged and the loop goes on."""
    while True:
        try:
            await purge_once(pool)
        except Exception:
            log.exception("purging deleted customers failed; trying again later")
        await asyncio.sleep(every)


def start(pool: asyncpg.Pool, every: float = PURGE_EVERY) -> asyncio.Task[None]:
    """The background upkeep task (cancel it to stop)."""
    return asyncio.create_task(purge_forever(pool, every), name="usher-housekeeping")
