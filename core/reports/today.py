"""Today's service level per queue, kept by the reports' fold for live dashboards.

``Today`` counts, for the current local day of the tenant's zone, each queue's waits answered,
answered within the queue's threshold, and abandoned (the overview's definitions,
docs/reports.md). The fold (``core.reports.rollup.RollupState``) adds to it as events pass —
the same events, at the same moments, as the day's rollup facts — and starts again at the
first event of a new day; ``as_of`` answers zeros once the day it counts is over. A dashboard
push reads it in O(queues): no query, no scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0

    @property
    def value(self) -> float | None:
        """Answered within the threshold ÷ (answered + abandoned); None with neither."""
        offered = self.answered + self.abandoned
        return self.answered_in_sl / offered if offered else None

    def __add__(self, other: ServiceLevel) -> ServiceLevel:
        return ServiceLevel(
            self.answered + other.answered,
            self.answered_in_sl + other.answered_in_sl,
            self.abandoned + other.abandoned,
        )


@dataclass(slots=True)
class Today:
    """Counts of the local day ``[day_start, day_end)`` (epoch seconds), per queue."""

    day_start: float = 0.0
    day_end: float = 0.0
    queues: dict[str, list[int]] = field(default_factory=dict)
    """Queue -> [answered, answered within threshold, abandoned]."""

    def count(self, day: tuple[float, float], queue: str, *, answered: bool, in_sl: bool) -> None:
        """One wait ended in ``day`` (its local start and end): answered or abandoned."""
        if day[0] != self.day_start:
            if day[0] < self.day_start:
                return  # an event of an earlier day (never in order): not today's
            self.day_start, self.day_end, self.queues = day[0], day[1], {}
        row = self.queues.setdefault(queue, [0, 0, 0])
        if answered:
            row[0] += 1
            row[1] += in_sl
        else:
            row[2] += 1

    def as_of(self, at: float) -> dict[str, ServiceLevel]:
        """Each queue's figures of the day holding ``at`` (none once that day is over)."""
        if not self.day_start <= at < self.day_end:
            return {}
        return {q: ServiceLevel(r[0], r[1], r[2]) for q, r in self.queues.items()}
