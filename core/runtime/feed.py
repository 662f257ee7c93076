"""Per-tenant event feeds for the front door's server streams: resumable, bounded, gap-free.

Committed events arrive with their ids (the tenant's event sequence) from the shards, in any
order and possibly with holes (pub/sub delivers at most once). A feed releases them strictly in
id order: a hole is filled from the store (``backfill``) before anything after it goes out. A
subscriber that reconnects with the last id it saw gets what it missed, with no gap and no
duplicate: from the feed's window, or from the store when it lies further back (up to
``MAX_CATCH_UP`` events; beyond that ``ResumeTooOld``). This also carries a client across a
front door's restart. A subscriber too slow to keep up is cut off with ``SlowConsumer`` rather
than letting server memory grow.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.routing import events as ev

MAX_CATCH_UP = 50_000
"""The most events a resuming subscriber may be behind (the bounded window of the contract)."""

EVERYTHING_STORED = -1
"""A subscription's catch-up bound meaning "whatever the store holds after its position"."""

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


Accepts = Callable[[ev.Event], bool]
"""A subscriber's cheap, stateless test of whether an event may concern it."""


class Subscription:
    """Items after ``after`` in id order, each once; gaps are read from the store.

    With ``accepts``, events it refuses are dropped as they are offered (never queued, never
    waking the subscriber), so the ids it yields skip them. Events read from the store (the
    catch-up of a resume) are yielded unfiltered: subscribers still ignore what is not theirs.
    """

    def __init__(
        self,
        feed: TenantFeed,
        limit: int,
        after: int | None,
        caught_up_to: int | None,
        accepts: Accepts | None = None,
    ) -> None:
        self._feed = feed
        self._queue: asyncio.Queue[Item | FeedError] = asyncio.Queue()
        self._accepts = accepts
        self._first_offered: int | None = None
        """The first id offered live: from it on, ids missing from the queue were refused."""
        self._limit = limit
        self._next = None if after is None else after + 1
        """The id owed next (None: whatever comes)."""
        self._caught_up_to = caught_up_to
        """Committed ids up to here may be missing from the queue: read them first."""
        self.closed = False

    def _offer(self, item: Item) -> None:
        if self.closed:
            return
        if self._first_offered is None:
            self._first_offered = item.event_id
        if self._accepts is not None and not self._accepts(item.event):
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
            if self._caught_up_to == EVERYTHING_STORED:
                async for missed in self._catch_up_with_store():
                    yield missed
            elif self._caught_up_to is not None:
                async for missed in self._catch_up(self._caught_up_to):
                    yield missed
            while True:
                got = await self._queue.get()
                if isinstance(got, FeedError):
                    raise got
                item = got
                if self._next is not None and item.event_id < self._next:
                    continue  # seen already
                if self._next is not None and item.event_id > self._next:
                    # ids offered live and missing were refused; the others come from the store
                    offered = self._first_offered
                    up_to = (
                        item.event_id - 1 if offered is None else min(item.event_id, offered) - 1
                    )
                    async for missed in self._catch_up(up_to):
                        yield missed
                self._next = item.event_id + 1
                yield item
        finally:
            self.close()

    async def _catch_up(self, up_to: int) -> AsyncIterator[Item]:
        """The items from the one owed next to ``up_to``, read from the store."""
        if self._next is None or up_to < self._next:
            return
        if up_to - self._next + 1 > MAX_CATCH_UP:
            raise ResumeTooOld(
                f"{up_to - self._next + 1} events missed since {self._next - 1}: "
                f"more than the {MAX_CATCH_UP} a stream may catch up on"
            )
        events = await self._feed._backfill(self._feed.tenant, self._next - 1, up_to)
        for event in events:
            yield Item(self._next, event)
            self._next += 1

    async def _catch_up_with_store(self) -> AsyncIterator[Item]:
        """Everything the store holds after the one owed next (this front door's feed has
        released nothing yet, so it cannot say how far the tenant's log goes)."""
        assert self._next is not None
        after = self._next - 1
        events = await self._feed._backfill(self._feed.tenant, after, after + MAX_CATCH_UP + 1)
        if len(events) > MAX_CATCH_UP:
            raise ResumeTooOld(
                f"more than {MAX_CATCH_UP} events missed since {after}: "
                "more than a stream may catch up on"
            )
        for event in events:
            yield Item(self._next, event)
            self._next += 1

    def ready(self) -> bool:
        """True while more items wait in the queue: a stream can gather them into one response
        and send when this turns False."""
        return not self._queue.empty()

    def close(self) -> None:
        self.closed = True
        self._feed._subscribers.discard(self)


class TenantFeed:
    def __init__(
        self,
        tenant: str,
        backfill: Backfill,
        *,
        window: int = 10_000,
        last_id: int | None = None,
    ) -> None:
        self.tenant = tenant
        self._backfill = backfill
        self._window: deque[Item] = deque(maxlen=window)
        self._released = last_id
        """The highest id handed to subscribers (None: nothing yet, so the first published id
        sets where this feed starts; older events are the store's)."""
        self._early: dict[int, ev.Event] = {}
        self._subscribers: set[Subscription] = set()
        self._filling = asyncio.Lock()

    @property
    def last_id(self) -> int:
        return self._released or 0

    @property
    def subscribers(self) -> int:
        """Subscriptions open now (a closed one leaves at once)."""
        return len(self._subscribers)

    async def publish(self, first_id: int, events: Sequence[ev.Event]) -> None:
        """Accept committed events ``first_id``...; release whatever is now in order."""
        for offset, event in enumerate(events):
            event_id = first_id + offset
            if self._released is None:
                self._released = event_id - 1
            if event_id > self._released:
                self._early[event_id] = event
        await self._release()

    async def _release(self) -> None:
        async with self._filling:
            assert self._released is not None
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

    def subscribe(
        self, after: int | None = None, *, limit: int = 1_000, accepts: Accepts | None = None
    ) -> Subscription:
        """Events after id ``after`` (None: only new ones); what the window no longer holds is
        read from the store when the subscriber iterates. ``accepts``: see ``Subscription``."""
        released = self._released if self._released is not None else -1
        oldest = self._window[0].event_id if self._window else released + 1
        behind = after is not None and after + 1 < oldest and after < released
        caught_up_to = oldest - 1 if behind else None
        if after is not None and self._released is None:
            caught_up_to = EVERYTHING_STORED  # a new front door: the store knows what it missed
        subscription = Subscription(self, limit, after, caught_up_to, accepts)
        if after is not None:
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

    def feed(self, tenant: str, last_id: int | None = None) -> TenantFeed:
        found = self._feeds.get(tenant)
        if found is None:
            found = self._feeds[tenant] = TenantFeed(
                tenant, self._backfill, window=self._window, last_id=last_id
            )
        return found

    async def publish(self, tenant: str, first_id: int, events: Sequence[ev.Event]) -> None:
        await self.feed(tenant).publish(first_id, events)
