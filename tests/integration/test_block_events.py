"""BlocklistService.WatchBlocks over real gRPC, PostgreSQL and Redis through the SDK: a block's
creation, unblocking and expiry (recorded by the housekeeping sweep) arrive on the stream, once
and in order; a stream resumes after any event id; a listing's watch_after_event_id continues
without a gap; concurrent writers number their changes without gaps; the stream caps hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from usher.client import BlocklistClient, ResourceExhausted, RetryPolicy
from usher.v1 import blocklist_service_pb2 as bl

from core import housekeeping
from core.api.streams import StreamLimits
from tests.integration.api_kit import Running, running

T = "acme"
WAIT = 30.0  # a safety net against hangs, never an assertion about speed


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def sup(api: Running) -> AsyncIterator[BlocklistClient]:
    async with BlocklistClient(api.target, await api.token(T, "supervisor")) as client:
        yield client


async def block(c: BlocklistClient, ttl: float | None = None, **target: str) -> bl.Block:
    request = bl.CreateBlockRequest(block=bl.Block(reason="spam", **target))  # type: ignore[arg-type]
    if ttl is not None:
        request.ttl.FromMilliseconds(round(ttl * 1000))
    return (await c.create_block(request)).block


async def take(events: AsyncIterator[bl.BlockEvent], n: int) -> list[bl.BlockEvent]:
    async def gather() -> list[bl.BlockEvent]:
        found = []
        async for event in events:
            found.append(event)
            if len(found) == n:
                return found
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(gather(), WAIT)


async def replayed(c: BlocklistClient, after: int, n: int) -> list[bl.BlockEvent]:
    """The ``n`` changes after ``after``, on a stream of their own (closed after)."""
    stream = c.watch_blocks(resume_after_event_id=after)
    try:
        return await take(aiter(stream), n)
    finally:
        await stream.aclose()


def summary(events: list[bl.BlockEvent]) -> list[tuple[int, int, str, int]]:
    return [(e.event_id, e.change, e.block.name, e.block.state) for e in events]


async def test_creation_unblocking_and_expiry_arrive_on_the_stream(
    api: Running, sup: BlocklistClient, pool: asyncpg.Pool
) -> None:
    stream = sup.watch_blocks()
    events = aiter(stream)
    phone = await block(sup, phone="+85291234567")
    first = await take(events, 1)
    assert summary(first) == [(1, bl.BLOCK_CHANGE_CREATED, phone.name, bl.BLOCK_STATE_ACTIVE)]
    assert first[0].block.phone == "+85291234567" and first[0].block.reason == "spam"
    assert first[0].time == phone.create_time

    ended = (await sup.unblock(bl.UnblockRequest(name=phone.name))).block
    await sup.unblock(bl.UnblockRequest(name=phone.name))  # again: no second change
    second = await take(events, 1)
    assert summary(second) == [(2, bl.BLOCK_CHANGE_UNBLOCKED, phone.name, bl.BLOCK_STATE_UNBLOCKED)]
    assert second[0].time == ended.unblock_time and second[0].block.unblocker == ended.unblocker

    short = await block(sup, ttl=0.5, ip_address="203.0.113.7")
    created_short = await take(events, 1)
    assert created_short[0].change == bl.BLOCK_CHANGE_CREATED
    chores = housekeeping.start(pool, sweep_every=0.2)  # the sweep usher serve runs
    try:
        third = await take(events, 1)
    finally:
        chores.cancel()
    assert summary(third) == [(4, bl.BLOCK_CHANGE_EXPIRED, short.name, bl.BLOCK_STATE_EXPIRED)]
    assert third[0].time == short.expire_time
    assert await housekeeping.sweep_once(pool) == 0  # an expiry is recorded once
    await stream.aclose()

    # a stream resumed after any event id shows exactly what the live one showed after it
    live = [*first, *second, *created_short, *third]
    for after in range(4):
        assert await replayed(sup, after, 4 - after) == live[after:]


async def test_a_listing_continues_on_the_stream_without_a_gap(sup: BlocklistClient) -> None:
    await block(sup, email="a@example.com")
    listed = await sup.list_blocks(bl.ListBlocksRequest())
    assert len(listed.blocks) == 1 and listed.watch_after_event_id == 1
    later = await block(sup, email="b@example.com")
    events = await replayed(sup, listed.watch_after_event_id, 1)
    assert summary(events) == [(2, bl.BLOCK_CHANGE_CREATED, later.name, bl.BLOCK_STATE_ACTIVE)]


async def test_concurrent_writers_number_their_changes_without_gaps(
    sup: BlocklistClient, pool: asyncpg.Pool
) -> None:
    watching = sup.watch_blocks()
    stream = aiter(watching)
    created = await asyncio.gather(*(block(sup, phone=f"+8529123450{i:02d}") for i in range(20)))
    await asyncio.gather(*(sup.unblock(bl.UnblockRequest(name=b.name)) for b in created[:10]))
    events = await take(stream, 30)
    await watching.aclose()
    assert [e.event_id for e in events] == list(range(1, 31))
    names = {b.name for b in created}
    assert {e.block.name for e in events if e.change == bl.BLOCK_CHANGE_CREATED} == names
    assert {e.block.name for e in events if e.change == bl.BLOCK_CHANGE_UNBLOCKED} == {
        b.name for b in created[:10]
    }
    assert await pool.fetchval("SELECT count(*) FROM block_events WHERE tenant_id = $1", T) == 30


async def test_tenants_see_only_their_own_changes(api: Running, sup: BlocklistClient) -> None:
    async with BlocklistClient(api.target, await api.token("globex", "supervisor")) as other:
        theirs = aiter(other.watch_blocks())
        await block(sup, phone="+85291234567")
        mine = await block(other, phone="+85291234567")
        events = await take(theirs, 1)
    assert summary(events) == [(1, bl.BLOCK_CHANGE_CREATED, mine.name, bl.BLOCK_STATE_ACTIVE)]


async def test_the_stream_caps_hold(pool: asyncpg.Pool, redis_url: str) -> None:
    limits = StreamLimits(per_credential=2)
    async with (
        running(pool, redis_url, with_core=True, stream_limits=limits) as api,
        BlocklistClient(
            api.target,
            await api.token(T, "supervisor"),
            retry=RetryPolicy(max_stream_reconnects=0),
        ) as sup,
    ):
        open_ones = [aiter(sup.watch_blocks()) for _ in range(2)]
        await block(sup, phone="+85291234567")
        for events in open_ones:
            await take(events, 1)
        with pytest.raises(ResourceExhausted):  # a third for the credential
            await take(aiter(sup.watch_blocks()), 1)
