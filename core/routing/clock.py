"""Time for the engine comes from a clock object, so tests and the simulator run on virtual time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to; it never goes backwards."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00Z
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        self._now += seconds

    def set(self, at: float) -> None:
        if at < self._now:
            raise ValueError("a clock never goes backwards")
        self._now = at

    def __repr__(self) -> str:
        return f"<ManualClock now={self._now:.3f}>"
