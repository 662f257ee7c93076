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
    store = Store(5)
    feeds = Feeds(store.backfill)
    subscription = feeds.feed(T).subscribe()

    await feeds.publish(T, 1, [event(1)])
    await feeds.publish(T, 4, [event(4), event(5)])  # 2 and 3 were lost on the way
    await feeds.publish(T, 2, [event(2), event(3)])  # late duplicates are ignored

    assert await take(subscription, 5) == [1, 2, 3, 4, 5]
    assert store.asked == [(1, 3)]


async def test_a_reconnecting_subscriber_resumes_without_gap_or_duplicate() -> None:
    feeds = Feeds(Store(0).backfill)
    await feeds.publish(T, 1, [event(n) for n in range(1, 6)])

    resumed = feeds.feed(T).subscribe(after=3)
    await feeds.publish(T, 6, [event(6)])

    assert await take(resumed, 3) == [4, 5, 6]


async def test_resuming_from_beyond_the_window_reads_the_rest_from_the_store() -> None:
    store = Store(6)
    feeds = Feeds(store.backfill, window=3)
    await feeds.publish(T, 1, [event(n) for n in range(1, 7)])

    assert await take(feeds.feed(T).subscribe(after=1), 5) == [2, 3, 4, 5, 6]
    assert store.asked == [(1, 3)]


async def test_a_fresh_front_door_catches_a_resuming_subscriber_up_from_the_store() -> None:
    store = Store(9)  # 1..9 were committed before this front door started
    feeds = Feeds(store.backfill)
    resumed = feeds.feed(T).subscribe(after=4)

    await feeds.publish(T, 10, [event(10)])  # the first event it sees after starting

    assert await take(resumed, 6) == [5, 6, 7, 8, 9, 10]


async def test_resuming_from_too_far_back_is_refused() -> None:
    from core.runtime import feed

    feeds = Feeds(Store(0).backfill, window=3)
    await feeds.publish(T, feed.MAX_CATCH_UP + 10, [event(1)])

    with pytest.raises(ResumeTooOld):
        await take(feeds.feed(T).subscribe(after=1), 1)


async def test_a_slow_subscriber_is_cut_off_instead_of_buffering_without_bound() -> None:
    feeds = Feeds(Store(0).backfill)
    slow = feeds.feed(T).subscribe(limit=3)

    await feeds.publish(T, 1, [event(n) for n in range(1, 10)])

    seen = []
    with pytest.raises(SlowConsumer):
        async for item in slow:
            seen.append(item.event_id)
    assert seen == [1, 2, 3]


def even(e: ev.Event) -> bool:
    return int(e.at) % 2 == 0


async def test_refused_events_are_skipped_without_reading_the_store() -> None:
    store = Store(0)
    feeds = Feeds(store.backfill)
    subscription = feeds.feed(T).subscribe(accepts=even)

    await feeds.publish(T, 1, [event(n) for n in range(1, 8)])

    assert await take(subscription, 3) == [2, 4, 6]
    assert store.asked == []


async def test_a_filtered_resume_still_catches_up_what_it_missed_before() -> None:
    store = Store(9)  # 1..9 committed before this front door started
    feeds = Feeds(store.backfill)
    resumed = feeds.feed(T).subscribe(after=4, accepts=even)

    await feeds.publish(T, 10, [event(n) for n in range(10, 14)])

    # the store's catch-up comes unfiltered (the subscriber ignores what is not its own)
    assert await take(resumed, 7) == [5, 6, 7, 8, 9, 10, 12]


async def test_a_resume_on_a_new_front_door_catches_up_without_waiting_for_new_events() -> None:
    """A feed that has released nothing yet (the front door just started) still owes a resuming
    subscriber what the store holds after its id, before any new event arrives."""
    store = Store(5)
    feeds = Feeds(store.backfill)
    subscription = feeds.feed(T).subscribe(after=2)

    store.events[6] = event(6)  # committed while the subscriber catches up: sent once
    await feeds.publish(T, 6, [event(6)])
    assert await take(subscription, 4) == [3, 4, 5, 6]
