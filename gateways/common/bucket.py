"""A token bucket: at most ``rate`` acquisitions a second on average, bursts up to ``burst``.

``acquire()`` takes one token, waiting for it when the bucket is empty; waiters are served in
the order they came (one lock), so a burst of callers is spread evenly rather than stampeding.
Time comes from ``clock`` (monotonic seconds), so tests can drive it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

_EPSILON = 1e-9
"""Tokens refilled by float arithmetic fall short of whole ones by rounding."""


class TokenBucket:
    """See the module docstring. ``rate`` > 0 tokens a second; ``burst`` >= 1 at most kept."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else min(rate, 50.0))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._at = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0
        """Seconds spent waiting for tokens, in all."""

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_acquire(self) -> bool:
        """Take a token if one is there now."""
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens -= 1.0
            return True
        return False

    async def acquire(self) -> None:
        """Take a token, waiting until there is one."""
        async with self._lock:
            self._refill()
            if self._tokens < 1.0 - _EPSILON:
                wait = (1.0 - self._tokens) / self.rate
                self.waited += wait
                await self._sleep(wait)  # type: ignore[misc]
                self._refill()
            self._tokens -= 1.0

    def __repr__(self) -> str:
        self._refill()
        return f"<TokenBucket {self._tokens:.1f}/{self.burst:.0f} at {self.rate:g}/s>"
