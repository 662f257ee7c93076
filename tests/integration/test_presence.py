from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.store.errors import InvalidInput
from core.store.presence import (
    BatchedRateLimiter,
    FanOut,
    Presence,
    RateLimiter,
    RedisUnavailable,
    Subscription,
)


@pytest.fixture
def presence(redis: aioredis.Redis, key_prefix: str) -> Presence:
    return Presence(redis, prefix=key_prefix)


@pytest.fixture
def limiter(redis: aioredis.Redis, key_prefix: str) -> RateLimiter:
    return RateLimiter(redis, prefix=key_prefix)


@pytest.fixture
def fan_out(redis: aioredis.Redis, key_prefix: str) -> FanOut:
    return FanOut(redis, prefix=key_prefix)


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    yield client
    await client.aclose()


# --- presence ----------------------------------------------------------------------------------


async def test_an_agent_is_online_until_its_heartbeat_lapses(presence: Presence) -> None:
    await presence.heartbeat("acme", "ann", ttl=1)
    await presence.heartbeat("acme", "bob", ttl=60)
    await presence.heartbeat("globex", "cy", ttl=60)
    assert await presence.online_agents("acme") == ("ann", "bob")

    await asyncio.sleep(1.1)

    assert await presence.online_agents("acme") == ("bob",)
    assert await presence.online_agents("globex") == ("cy",)


async def test_a_heartbeat_renews_and_leaving_unlists_at_once(
    presence: Presence, redis: aioredis.Redis, key_prefix: str
) -> None:
    await presence.heartbeat("acme", "ann", ttl=0.2)
    await presence.heartbeat("acme", "ann", ttl=60)  # renewed before it lapsed
    await presence.heartbeat("acme", "bob", ttl=60)
    await asyncio.sleep(0.3)
    assert await presence.online_agents("acme") == ("ann", "bob")

    await presence.leave("acme", "ann")

    assert await presence.online_agents("acme") == ("bob",)
    assert await presence.online_agents("nobody") == ()
    # The tenant's set is the only key, and it expires after its longest-lived member.
    assert [k async for k in redis.scan_iter(match=key_prefix + "*")] == [
        f"{key_prefix}presence:acme".encode()
    ]
    assert 0 < await redis.pttl(f"{key_prefix}presence:acme") <= 60_000


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan")])
async def test_a_heartbeat_needs_a_positive_ttl(presence: Presence, ttl: float) -> None:
    with pytest.raises(InvalidInput):
        await presence.heartbeat("acme", "ann", ttl=ttl)


# --- rate limits -------------------------------------------------------------------------------


async def test_a_rate_limit_allows_up_to_the_limit_per_window(limiter: RateLimiter) -> None:
    decisions = [await limiter.allow("acme", limit=3, window=60) for _ in range(5)]

    assert decisions == [True, True, True, False, False]
    assert await limiter.allow("globex", limit=3, window=60)  # tenants count separately
    assert await limiter.allow("acme", limit=3, window=60, scope="messages")


async def test_concurrent_requests_never_exceed_the_limit(limiter: RateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.allow("acme", 10, 60) for _ in range(25)))
    assert decisions.count(True) == 10


async def test_a_new_window_allows_again(limiter: RateLimiter) -> None:
    assert await limiter.allow("acme", limit=1, window=0.3)
    assert not await limiter.allow("acme", limit=1, window=0.3)

    await asyncio.sleep(0.4)

    assert await limiter.allow("acme", limit=1, window=0.3)


# --- fan-out -----------------------------------------------------------------------------------


async def next_payload(events: Subscription) -> bytes:
    return await asyncio.wait_for(anext(events), timeout=5)


async def test_every_subscriber_receives_every_event_in_order(fan_out: FanOut) -> None:
    async with fan_out.subscribe("acme") as first, fan_out.subscribe("acme") as second:
        assert await fan_out.publish("globex", b"for another tenant") == 0
        assert await fan_out.publish("acme", b"\x00\x01 binary") == 2
        assert await fan_out.publish("acme", "退款 คืนเงิน".encode()) == 2

        for events in (first, second):
            assert await next_payload(events) == b"\x00\x01 binary"
            assert (await next_payload(events)).decode() == "退款 คืนเงิน"

    assert await fan_out.publish("acme", b"nobody left") == 0


# --- Redis unavailable -------------------------------------------------------------------------


async def test_redis_unavailable_is_a_typed_error(dead_redis: aioredis.Redis) -> None:
    with pytest.raises(RedisUnavailable) as failed:
        await Presence(dead_redis, timeout=0.5).heartbeat("acme", "ann", ttl=5)
    with pytest.raises(RedisUnavailable):
        await Presence(dead_redis, timeout=0.5).online_agents("acme")
    with pytest.raises(RedisUnavailable):
        await RateLimiter(dead_redis, timeout=0.5).allow("acme", 1, 1)
    with pytest.raises(RedisUnavailable):
        await FanOut(dead_redis, timeout=0.5).publish("acme", b"x")
    with pytest.raises(RedisUnavailable):
        async with FanOut(dead_redis, timeout=0.5).subscribe("acme"):
            pass
    assert failed.value.code == "UNAVAILABLE"


async def test_a_batched_limit_is_exact_to_within_one_batch(limiter: RateLimiter) -> None:
    shared = BatchedRateLimiter(limiter)
    other_door = BatchedRateLimiter(limiter)

    allowed = [
        await door.allow("acme", 100, 60) for _ in range(100) for door in (shared, other_door)
    ]

    assert 100 <= sum(allowed) <= 100 + 2 * 10  # one batch (a tenth of the limit) per door
    assert not await shared.allow("acme", 100, 60) and not await other_door.allow("acme", 100, 60)
