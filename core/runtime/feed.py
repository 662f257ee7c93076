"""Per-tenant event feeds for the front door's server streams: resumable, bounded, gap-free.

Committed events arrive with their ids (the tenant's event sequence) from the shards, in any
order and possibly with holes (pub/sub delivers at most once). A feed releases them strictly in
id order: a hole is filled from the store (``backfill``) before anything after it goes out. A
subscriber that reconnects with the last id it saw gets what it missed from the feed's window,
with no gap and no duplicate. A subscriber too slow to keep up is cut off with ``SlowConsumer``
rather than letting server memory grow.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.routing import events as ev

Backfill = Callable[[str, int, int], Awaitable[Sequence[ev.Event]]]
"""(tenant, after id, up to id) -> the events with ids after..up_to, in order."""


class FeedError(Exception):
    code = "FAILED_PRECONDITION"


class ResumeTooOld(FeedError):
    """The id to resume from has left the window: reload the state, then subscribe afresh."""

    code = "OUT_OF_RANGE"


class SlowConsumer(FeedError):
    """The subscriber fell too far behind and was cut off; resume from its last id."""

    code = "RESOURCE_EXHAUSTED"


@dataclass(frozen=True, slots=True)
class Item:
    event_id: int
    event: ev.Event


class Subscription:
    def __init__(self, feed: TenantFeed, limit: int) -> None:
        self._feed = feed
        self._queue: asyncio.Queue[Item | FeedError] = asyncio.Queue()
        self._limit = limit
        self.closed = False

    def _offer(self, item: Item) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._limit:
            self.closed = True
            self._queue.put_nowait(SlowConsumer(f"fell {self._limit} events behind"))
            return
        self._queue.put_nowait(item)

    def __aiter__(self) -> AsyncIterator[Item]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Item]:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, FeedError):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True
        self._feed._subscribers.discard(self)


class TenantFeed:
    def __init__(
        self, tenant: str, backfill: Backfill, *, window: int = 10_000, last_id: int = 0
    ) -> None:
        self.tenant = tenant
        self._backfill = backfill
        self._window: deque[Item] = deque(maxlen=window)
        self._released = last_id
        """The highest id handed to subscribers; everything up to it went out in order."""
        self._early: dict[int, ev.Event] = {}
        self._subscribers: set[Subscription] = set()
        self._filling = asyncio.Lock()

    @property
    def last_id(self) -> int:
        return self._released

    async def publish(self, first_id: int, events: Sequence[ev.Event]) -> None:
        """Accept committed events ``first_id``...; release whatever is now in order."""
        for offset, event in enumerate(events):
            event_id = first_id + offset
            if event_id > self._released:
                self._early[event_id] = event
        await self._release()

    async def _release(self) -> None:
        async with self._filling:
            while self._early:
                expected = self._released + 1
                if expected in self._early:
                    self._emit(expected, self._early.pop(expected))
                    continue
                newest = min(self._early)  # a hole before it: fetch the hole from the store
                for event in await self._backfill(self.tenant, self._released, newest - 1):
                    self._emit(self._released + 1, event)
                if self._released < newest - 1:
                    return  # the store does not have them yet; the next publish retries

    def _emit(self, event_id: int, event: ev.Event) -> None:
        item = Item(event_id, event)
        self._released = event_id
        self._window.append(item)
        for subscriber in list(self._subscribers):
            subscriber._offer(item)

    def subscribe(self, after: int | None = None, *, limit: int = 1_000) -> Subscription:
        """Events after id ``after`` (None: only new ones). ``ResumeTooOld`` if the window no
        longer reaches back to it."""
        subscription = Subscription(self, limit)
        if after is not None and after < self._released:
            oldest = self._window[0].event_id if self._window else self._released + 1
            if after + 1 < oldest:
                raise ResumeTooOld(f"event {after + 1} has left the window (oldest kept: {oldest})")
            for item in self._window:
                if item.event_id > after:
                    subscription._offer(item)
        self._subscribers.add(subscription)
        return subscription


class Feeds:
    """The feeds of every tenant this front door serves, created on first use."""

    def __init__(self, backfill: Backfill, *, window: int = 10_000) -> None:
        self._backfill = backfill
        self._window = window
        self._feeds: dict[str, TenantFeed] = {}

    def feed(self, tenant: str, last_id: int = 0) -> TenantFeed:
        found = self._feeds.get(tenant)
        if found is None:
            found = self._feeds[tenant] = TenantFeed(
                tenant, self._backfill, window=self._window, last_id=last_id
            )
        return found

    async def publish(self, tenant: str, first_id: int, events: Sequence[ev.Event]) -> None:
        await self.feed(tenant, last_id=first_id - 1).publish(first_id, events)
