"""Backoff for retried calls and reconnected streams."""

from __future__ import annotations

import random
from dataclasses import dataclass

from usher.client.errors import UsherError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for retried calls and reconnected streams.

    Only idempotent calls are retried: reads, and writes that carry an idempotency key. A retry
    waits ``initial_backoff * multiplier ** (n - 1)`` seconds (capped at ``max_backoff``, with
    ``jitter`` either way), or longer if the server's ``RetryInfo`` asks for it.
    """

    max_attempts: int = 5
    """Attempts per unary call in all, the first included; 1 disables retries."""
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    """Each delay is scaled by a random factor in ``[1 - jitter, 1 + jitter]``."""
    max_stream_reconnects: int | None = None
    """Consecutive failed reconnects before a stream gives up; None: never give up. A stream
    that delivers something resets the count."""

    def backoff(self, retry: int, error: UsherError | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        delay = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        asked = error.retry_delay if error is not None else None
        return max(delay, asked or 0.0)


DEFAULT_RETRY = RetryPolicy()
