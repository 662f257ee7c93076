"""A timer heap whose entries are validated against the owner's stored deadline when they fire.

Deadlines live in the entities (an offer's deadline, a conversation's idle deadline...), so they
survive a rebuild; the heap is only an index over them. Cancelling a timer is changing or
clearing the stored deadline: the stale heap entry then fires nothing.
"""

from __future__ import annotations

import heapq
from enum import StrEnum


class TimerKind(StrEnum):
    OFFER = "offer"
    TRANSFER = "transfer"
    STEP = "step"
    MAX_WAIT = "max_wait"
    CUSTOMER_IDLE = "customer_idle"
    AGENT_IDLE = "agent_idle"
    WRAP_UP = "wrap_up"
    HOURS = "hours"
    RETENTION = "retention"


class TimerHeap:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerKind, str]] = []
        self._seq = 0

    def arm(self, deadline: float, kind: TimerKind, subject: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, kind, subject))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[float, TimerKind, str] | None:
        """The earliest entry due at ``now``, or None. The caller checks it is still current."""
        if self._heap and self._heap[0][0] <= now:
            deadline, _, kind, subject = heapq.heappop(self._heap)
            return deadline, kind, subject
        return None

    def __len__(self) -> int:
        return len(self._heap)
