"""Feeding a front door's feeds from the event log, for shards in other processes (Ray).

An in-process shard publishes its commits straight into the feeds (``core.api.local``). Ray
shards do not reach this process, so ``LogTail`` polls the ``tenants`` table every ``interval``
seconds for tenants whose last event moved and publishes the new events into the feeds (which
release them in id order and fill any hole from the store). Events reach streams up to
``interval`` later than their commit. Tenants are picked up from the time the tail starts.

TODO: have the Ray shards publish committed events through Redis (``presence.FanOut``) and
subscribe here, so events arrive without polling; keep this tail as the gap filler.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from core.runtime.feed import Feeds
from core.store.eventlog import EventLog

log = structlog.get_logger(__name__)


class LogTail:
    def __init__(self, pool: asyncpg.Pool, feeds: Feeds, *, interval: float = 0.2) -> None:
        self._pool = pool
        self._feeds = feeds
        self._log = EventLog(pool)
        self._interval = interval
        self._seen: dict[str, int] | None = None
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> int:
        """Publish what committed since the last poll; how many events that was."""
        rows = await self._pool.fetch("SELECT tenant_id, last_seq FROM tenants")
        latest = {r["tenant_id"]: int(r["last_seq"]) for r in rows}
        if self._seen is None:
            self._seen = latest
            return 0
        published = 0
        for tenant, last in latest.items():
            before = self._seen.get(tenant, 0)
            if last > before:
                events = await self._log.load(tenant, before, last)
                await self._feeds.publish(tenant, before + 1, events)
                published += len(events)
            self._seen[tenant] = last
        return published

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="log-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception as exc:  # the store is away: try again next time
                log.warning("log tail poll failed", error=repr(exc))
            await asyncio.sleep(self._interval)
