"""Event feeds: in order, holes filled from the store, resumable, bounded."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.routing import events as ev
from core.runtime.feed import Feeds, ResumeTooOld, SlowConsumer, Subscription

T = "acme"


def event(n: int) -> ev.Event:
    return ev.SkillDefined(tenant=T, at=float(n), skill=f"s{n}")


class Store:
    """The events the store holds, by id, and the backfills asked of it."""

    def __init__(self, upto: int) -> None:
        self.events = {n: event(n) for n in range(1, upto + 1)}
        self.asked: list[tuple[int, int]] = []

    async def backfill(self, tenant: str, after: int, up_to: int) -> Sequence[ev.Event]:
        self.asked.append((after, up_to))
        return [self.events[n] for n in range(after + 1, up_to + 1) if n in self.events]


async def take(subscription: Subscription, count: int) -> list[int]:
    ids = []
    async for item in subscription:
        ids.append(item.event_id)
        if len(ids) == count:
            break
    return ids


async def test_events_reach_subscribers_in_id_order() -> None:
    feeds = Feeds(Store(0).backfill)
    subscription = feeds.feed(T).subscribe()

    await feeds.publish(T, 1, [event(1), event(2)])
    await feeds.publish(T, 3, [event(3)])

    assert await take(subscription, 3) == [1, 2, 3]


async def test_a_hole_is_filled_from_the_store_before_later_events_go_out() -> None:
    store = Store(4)
    feeds = Feeds(store.backfill)
    subscription = feeds.feed(T).subscribe()

    await feeds.publish(T, 3, [event(3), event(4)])  # 1 and 2 were lost on the way
    await feeds.publish(T, 1, [event(1), event(2)])  # late duplicates are ignored

    assert await take(subscription, 4) == [1, 2, 3, 4]
    assert store.asked == [(0, 2)]


async def test_a_reconnecting_subscriber_resumes_without_gap_or_duplicate() -> None:
    feeds = Feeds(Store(0).backfill)
    await feeds.publish(T, 1, [event(n) for n in range(1, 6)])

    resumed = feeds.feed(T).subscribe(after=3)
    await feeds.publish(T, 6, [event(6)])

    assert await take(resumed, 3) == [4, 5, 6]


async def test_resuming_from_beyond_the_window_is_refused() -> None:
    feeds = Feeds(Store(0).backfill, window=3)
    await feeds.publish(T, 1, [event(n) for n in range(1, 7)])

    with pytest.raises(ResumeTooOld):
        feeds.feed(T).subscribe(after=1)
    assert await take(feeds.feed(T).subscribe(after=3), 3) == [4, 5, 6]


async def test_a_slow_subscriber_is_cut_off_instead_of_buffering_without_bound() -> None:
    feeds = Feeds(Store(0).backfill)
    slow = feeds.feed(T).subscribe(limit=3)

    await feeds.publish(T, 1, [event(n) for n in range(1, 10)])

    seen = []
    with pytest.raises(SlowConsumer):
        async for item in slow:
            seen.append(item.event_id)
    assert seen == [1, 2, 3]
