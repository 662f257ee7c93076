"""The blocklist's change log as live feeds, one per watched tenant in this front door
(BlocklistService.WatchBlocks).

Blocks are PostgreSQL data, not routing state: their changes come from ``block_events``
(``core.store.block_events``), not from the shards' event log. A tenant's ``_TenantFeed`` keeps
the newest changes it has read (a bounded window) and the number of the last (``head``); it
reads what is after ``head`` when PostgreSQL notifies a change of that tenant
(``core.store.block_log.CHANNEL``, one listening connection per process while anyone watches)
and, should a notification be lost, every ``poll`` seconds. A watcher reads from the window, or
from the table when it is further behind, and then waits for ``head`` to pass its position:
the changes are numbered without gaps in commit order, so it sees each one once, in order,
whatever it resumes from. A slow watcher holds nothing: it reads on at its own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final

import asyncpg
import structlog

from core.store import block_events
from core.store.block_events import BlockEvent
from core.store.block_log import CHANNEL

log = structlog.get_logger(__name__)

POLL_EVERY: Final = 10.0
"""Seconds between reads of a watched tenant's log when no notification came."""
WINDOW: Final = 1_024
"""Changes a feed keeps in memory for watchers that are close behind."""
PAGE: Final = 200
"""Changes handed to a watcher at once."""


class _TenantFeed:
    """One tenant's newest changes and a task that reads more (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, tenant: str, head: int, poll: float) -> None:
        self._pool = pool
        self._tenant = tenant
        self.head = head
        self._window: deque[BlockEvent] = deque(maxlen=WINDOW)
        self._changed = asyncio.Condition()
        self._poked = asyncio.Event()
        self._poll = poll
        self.watchers = 0
        self._task = asyncio.create_task(self._run(), name=f"block-feed-{tenant}")

    def poke(self) -> None:
        """A change was committed: read it now."""
        self._poked.set()

    def since(self, seq: int) -> list[BlockEvent] | None:
        """Up to ``PAGE`` changes after ``seq`` from memory (empty: none yet); None when the
        window does not reach back that far (read the table)."""
        if seq >= self.head:
            return []
        if not self._window or self._window[0].seq > seq + 1:
            return None
        return [e for e in self._window if e.seq > seq][:PAGE]

    async def wait_beyond(self, seq: int) -> None:
        """Until a change after ``seq`` has been read."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.head > seq)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self._poll)
            self._poked.clear()
            try:
                await self._read()
            except Exception:
                log.exception("reading the block change log failed", tenant=self._tenant)

    async def _read(self) -> None:
        while True:
            found = await block_events.after(self._pool, self._tenant, self.head, PAGE)
            if not found:
                return
            self._window.extend(found)
            async with self._changed:
                self.head = found[-1].seq
                self._changed.notify_all()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class BlockWatch:
    """The feeds of one front-door process; ``changes`` is a watcher's stream."""

    def __init__(self, pool: asyncpg.Pool, *, poll: float = POLL_EVERY) -> None:
        self._pool = pool
        self._poll = poll
        self._feeds: dict[str, _TenantFeed] = {}
        self._listener: Any = None
        """The pool connection listening on ``CHANNEL`` while any tenant is watched."""
        self._lock = asyncio.Lock()

    async def changes(self, tenant: str, after: int) -> AsyncIterator[list[BlockEvent]]:
        """The tenant's changes after number ``after``, in order, in batches, for ever (until
        the caller stops iterating)."""
        feed = await self._join(tenant)
        try:
            seen = after
            while True:
                batch = feed.since(seen)
                if batch is None:
                    batch = await block_events.after(self._pool, tenant, seen, PAGE)
                if batch:
                    seen = batch[-1].seq
                    yield batch
                else:
                    await feed.wait_beyond(seen)
        finally:
            await self._leave(tenant, feed)

    async def _join(self, tenant: str) -> _TenantFeed:
        async with self._lock:
            feed = self._feeds.get(tenant)
            if feed is None:
                await self._listen()
                head = await block_events.head(self._pool, tenant)
                feed = self._feeds[tenant] = _TenantFeed(self._pool, tenant, head, self._poll)
            feed.watchers += 1
            return feed

    async def _leave(self, tenant: str, feed: _TenantFeed) -> None:
        async with self._lock:
            feed.watchers -= 1
            if feed.watchers > 0:
                return
            del self._feeds[tenant]
            await feed.close()
            if not self._feeds:
                await self._unlisten()

    def _notified(self, _conn: object, _pid: int, _channel: str, tenant: str) -> None:
        feed = self._feeds.get(tenant)
        if feed is not None:
            feed.poke()

    async def _listen(self) -> None:
        if self._listener is not None:
            return
        try:
            conn = await self._pool.acquire()
        except Exception:
            log.exception("no connection to listen for block changes; polling only")
            return
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except Exception:
            log.exception("listening for block changes failed; polling only")
            await self._pool.release(conn)
            return
        self._listener = conn

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.remove_listener(CHANNEL, self._notified)
        await self._pool.release(conn)
