"""Live state in Redis, shared by every front door: agent presence, rate limits, event fan-out.

Nothing here is durable: presence is rebuilt by the next heartbeats, a counter by the next
window, and pub/sub delivers at most once (a front door that reconnects resyncs from the store).
Times are the Redis server's, so front doors with skewed clocks agree. Every key starts with
``prefix``. Clients must not decode responses (payloads are bytes).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from core.store.errors import InvalidInput, StoreUnavailable
from core.store.validation import require_name, require_text

T = TypeVar("T")


class RedisUnavailable(StoreUnavailable):
    """Redis did not answer (in time); nothing was recorded."""


_OUTAGES: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


async def _bounded(call: Awaitable[T], timeout: float) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await call
    except _OUTAGES as exc:  # asyncio.timeout's TimeoutError is an OSError
        raise RedisUnavailable(f"Redis is unavailable: {exc!r}") from exc


def _positive(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(f"{field} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidInput(f"{field} must be finite")
    return value


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# --- presence ----------------------------------------------------------------------------------

# One sorted set per tenant: agent -> expiry (server milliseconds). The set itself expires after
# its longest-lived member, so an idle tenant leaves nothing behind.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

_ONLINE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""


class Presence:
    """Which agents are online: each heartbeat keeps an agent listed for ``ttl`` seconds."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "usher:", timeout: float = 1.0):
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._online = redis.register_script(_ONLINE)

    def key(self, tenant: str) -> str:
        return f"{self._prefix}presence:{tenant}"

    async def heartbeat(self, tenant: str, agent_id: str, ttl: float) -> None:
        """List ``agent_id`` as online until ``ttl`` seconds from now (replacing any earlier
        deadline, shorter or longer)."""
        require_name("tenant", tenant)
        require_text("agent_id", agent_id, min_len=1, max_len=100)
        ttl_ms = _ms(_positive("ttl", ttl))
        await _bounded(
            self._heartbeat(keys=[self.key(tenant)], args=[agent_id, ttl_ms]), self._timeout
        )

    async def leave(self, tenant: str, agent_id: str) -> None:
        """Unlist ``agent_id`` now (signing out), without waiting for the heartbeat to lapse."""
        require_name("tenant", tenant)
        require_text("agent_id", agent_id, min_len=1, max_len=100)
        await _bounded(self._redis.zrem(self.key(tenant), agent_id), self._timeout)

    async def online_agents(self, tenant: str) -> tuple[str, ...]:
        """The agents whose last heartbeat has not lapsed, sorted."""
        require_name("tenant", tenant)
        members: list[Any] = await _bounded(self._online(keys=[self.key(tenant)]), self._timeout)
        return tuple(sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members))


# --- rate limits -------------------------------------------------------------------------------


class RateLimiter:
    """Per-tenant fixed-window counters.

    A window opens with its first request and lasts ``window`` seconds (the counter's TTL), so up
    to ``2 * limit`` requests can pass around a window's edge. Denied requests count too.
    """

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "usher:", timeout: float = 1.0):
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout

    def key(self, tenant: str, scope: str) -> str:
        return f"{self._prefix}rate:{tenant}:{scope}"

    async def allow(
        self, tenant: str, limit: int, window: float, *, scope: str = "requests"
    ) -> bool:
        """Count one request; True while the window has seen at most ``limit`` of them.

        ``scope`` separates independent limits of one tenant (say, messages and API calls).
        """
        require_name("tenant", tenant)
        require_name("scope", scope)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInput(f"limit must be a whole number >= 0, got {limit!r}")
        return await self.add(tenant, 1, window, scope=scope) <= limit

    async def add(self, tenant: str, calls: int, window: float, *, scope: str = "requests") -> int:
        """Count ``calls`` requests at once; the window's count after them."""
        window_ms = _ms(_positive("window", window))
        key = self.key(tenant, scope)
        # Atomic: the counter is always created with its TTL, and INCRBY keeps that TTL.
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, 0, nx=True, px=window_ms)
        pipe.incrby(key, calls)
        _, count = await _bounded(pipe.execute(), self._timeout)
        return int(count)


class BatchedRateLimiter:
    """``RateLimiter`` with most calls counted locally: they reach Redis ``batch`` at a time
    (``batch`` is a tenth of the limit, at most 32), so a call rarely costs a round trip. A
    tenant may overrun its limit by about ``batch`` calls per front door and window; once a
    flush finds the limit passed, this front door refuses the tenant for the rest of its local
    window."""

    def __init__(self, limiter: RateLimiter, *, clock: Callable[[], float] = time.monotonic):
        self._limiter = limiter
        self._clock = clock
        self._local: dict[str, _LocalWindow] = {}

    async def allow(self, tenant: str, limit: int, window: float) -> bool:
        now = self._clock()
        local = self._local.get(tenant)
        if local is None or now >= local.ends:
            local = self._local[tenant] = _LocalWindow(now + window)
        if local.refused:
            return False
        local.unsent += 1
        if local.unsent >= max(1, min(32, limit // 10)):
            calls, local.unsent = local.unsent, 0
            local.refused = await self._limiter.add(tenant, calls, window) > limit
        return not local.refused


@dataclass(slots=True)
class _LocalWindow:
    ends: float
    unsent: int = 0
    """Calls counted here and not yet added to the shared counter."""
    refused: bool = False


# --- fan-out -----------------------------------------------------------------------------------


class FanOut:
    """Pub/sub per tenant, so every front door sees every event: at most once, in order per
    publisher. Put a sequence number in the payload to notice gaps."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "usher:", timeout: float = 1.0):
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout

    def channel(self, tenant: str) -> str:
        return f"{self._prefix}events:{tenant}"

    async def publish(self, tenant: str, payload: bytes) -> int:
        """Send ``payload`` to the tenant's current subscribers; return how many received it."""
        require_name("tenant", tenant)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise InvalidInput(f"payload must be bytes, got {type(payload).__name__}")
        receivers = await _bounded(
            self._redis.publish(self.channel(tenant), bytes(payload)), self._timeout
        )
        return int(receivers)

    def subscribe(self, tenant: str) -> Subscription:
        """``async with fan_out.subscribe(t) as events: async for payload in events: ...``;
        subscribed once the ``async with`` is entered."""
        require_name("tenant", tenant)
        return Subscription(self._redis, self.channel(tenant), self._timeout)


class Subscription:
    """The payloads published to one tenant's channel after entering, as an async iterator.

    Raises ``RedisUnavailable`` when the connection is lost for good (redis-py retries first,
    and messages published meanwhile are lost).
    """

    def __init__(self, redis: aioredis.Redis, channel: str, timeout: float) -> None:
        self._pubsub = redis.pubsub()
        self._channel = channel
        self._timeout = timeout

    async def __aenter__(self) -> Subscription:
        async def confirmed() -> None:
            await self._pubsub.subscribe(self._channel)
            while True:  # the server's confirmation: publishes after it reach us
                message = await self._pubsub.get_message(timeout=self._timeout)
                if message is not None and message["type"] == "subscribe":
                    return

        try:
            await _bounded(confirmed(), self._timeout)
        except BaseException:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except _OUTAGES as exc:
                raise RedisUnavailable(f"Redis is unavailable: {exc!r}") from exc
            if message is not None and message["type"] == "message":
                data = message["data"]
                return data if isinstance(data, bytes) else str(data).encode()
