"""Feeding a front door's feeds from shards in other processes (Ray): pushed, and tailed.

An in-process shard publishes its commits straight into the feeds (``core.api.local``). Ray
shards publish theirs to Redis (``core.runtime.actor.CommitPublisher``); ``CommitListener``
subscribes to every tenant's channel with one pattern subscription and publishes what arrives
into the feeds, reconnecting (with backoff) whenever Redis fails. Pub/sub is at most once, so
``LogTail`` stays as the gap filler: every ``interval`` seconds (2 by default) it reads the
``tenants`` table for tenants whose last event moved and publishes the new events too. The
feeds release events strictly in id order, drop what they already released and fill holes from
the store, so duplicates and losses on either path are harmless: a lost push shows up at most
about ``interval`` late. Tenants are tailed from the time the tail starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog

from core.runtime.actor import DEFAULT_PREFIX, channel_pattern, decode_commit, tenant_of
from core.runtime.feed import Feeds
from core.store.eventlog import EventLog

log = structlog.get_logger(__name__)


class LogTail:
    def __init__(self, pool: asyncpg.Pool, feeds: Feeds, *, interval: float = 2.0) -> None:
        self._feeds = feeds
        self._log = EventLog(pool)
        self._interval = interval
        self._seen: dict[str, int] | None = None
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> int:
        """Publish what committed since the last poll; how many events that was."""
        latest = await self._log.last_sequences()
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


class CommitListener:
    """Publishes the commits Ray shards push through Redis (under ``prefix``) into ``feeds``.

    ``start()`` runs it until ``stop()``; ``subscribed`` is set while the pattern subscription
    is confirmed (messages published before that are not seen). After every (re)subscription
    ``resync`` runs, if given (say, ``LogTail.poll``), to pick up what was missed meanwhile.
    A message that cannot be decoded is logged and skipped.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        feeds: Feeds,
        *,
        prefix: str = DEFAULT_PREFIX,
        resync: Callable[[], Awaitable[Any]] | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self._redis = redis
        self._feeds = feeds
        self._prefix = prefix
        self._resync = resync
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None
        self._healthy = False
        self.subscribed = asyncio.Event()
        self.received = 0
        """Commit messages received so far."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="commit-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                await self._listen()
            except Exception as exc:  # Redis went away: resubscribe after a pause
                if self._healthy:  # it had worked: start the backoff afresh
                    delay = self._backoff[0]
                log.warning("commit listener failed", error=repr(exc), retry_in=delay)
            self._healthy = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.psubscribe(channel_pattern(self._prefix))
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] == "psubscribe":
                    self._healthy = True
                    self.subscribed.set()
                    await self._resynced()
                elif message["type"] == "pmessage":
                    await self._deliver(message["channel"], message["data"])
        finally:
            self.subscribed.clear()
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _resynced(self) -> None:
        if self._resync is None:
            return
        try:
            await self._resync()
        except Exception as exc:  # the store is away: the tail catches up later
            log.warning("commit listener resync failed", error=repr(exc))

    async def _deliver(self, channel: Any, data: Any) -> None:
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        tenant = tenant_of(name, self._prefix)
        if tenant is None:
            return
        try:
            first_id, events = decode_commit(data if isinstance(data, bytes) else bytes(data))
        except Exception as exc:
            log.warning("undecodable commit message", channel=name, error=repr(exc))
            return
        self.received += 1
        await self._feeds.publish(tenant, first_id, events)
