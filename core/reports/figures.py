"""From a summed rollup vector to the figures a report shows: counts, rates, percentiles.

Percentiles are estimated from the histograms (``core.reports.measures.EDGES``): the rank
``p × n`` is found in the cumulative counts and placed linearly inside its bin. The estimate
therefore lies in the same bin as the true value, off by at most that bin's width (≤ 1 s up
to 3 s, ≤ 5 s up to 30 s, ≤ 15 s up to 60 s, ≤ 30 s up to 2 min, and at most half the value
above); a value in the last bin (over a day) is shown as one day. Means are exact (from the
sums of milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from core.reports import measures as ms

PERCENTILES: Final = (0.5, 0.9, 0.95)
_ATTENDANCE: Final = frozenset(
    ms.INDEX[name]
    for name in (
        "online_ms",
        "away_ms",
        "break_ms",
        "sign_ins",
        "first_sign_in_ms",
        "last_online_ms",
    )
)


@dataclass(frozen=True, slots=True)
class Distribution:
    """A duration measure over a period: how many, the mean and p50/p90/p95, in seconds
    (None when there are none)."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None


def percentile(bins: Sequence[int], p: float) -> float | None:
    """The ``p`` quantile (0 < p ≤ 1) of a histogram's bins, interpolated in its bin."""
    total = sum(bins)
    if total == 0:
        return None
    rank = p * total
    below = 0
    for i, count in enumerate(bins):
        if count and below + count >= rank:
            if i == len(bins) - 1:
                return ms.lower_edge(i)
            low, high = ms.lower_edge(i), ms.upper_edge(i)
            return low + (high - low) * (rank - below) / count
        below += count
    return ms.lower_edge(len(bins) - 1)


@dataclass(frozen=True, slots=True)
class Figures:
    """The sums of a group's rows, read by measure name, with the derived figures."""

    values: tuple[int, ...]

    def __getitem__(self, measure: str) -> int:
        return self.values[ms.INDEX[measure]]

    def bins(self, histogram: str) -> tuple[int, ...]:
        start = ms.histogram_start(histogram)
        return self.values[start : start + ms.BINS]

    def distribution(self, histogram: str, total: str) -> Distribution:
        bins = self.bins(histogram)
        count = sum(bins)
        if count == 0:
            return Distribution(0, None, None, None, None)
        p50, p90, p95 = (percentile(bins, p) for p in PERCENTILES)
        return Distribution(count, self[total] / 1000 / count, p50, p90, p95)

    @property
    def wait(self) -> Distribution:
        """Answered waits: from entering the queue (an overflow keeps the age) to an agent."""
        return self.distribution("wait", "wait_ms")

    @property
    def first_response(self) -> Distribution:
        """From an agent's assignment to their first message in it."""
        return self.distribution("first_response", "first_response_ms")

    @property
    def handle(self) -> Distribution:
        """From an agent's assignment to its end (ended, transferred away, handed back)."""
        return self.distribution("handle", "handle_ms")

    @property
    def service_level(self) -> float | None:
        """Answered within the queue's threshold ÷ (answered + abandoned while waiting)."""
        offered = self["answered"] + self["abandoned"]
        return self["answered_in_sl"] / offered if offered else None

    @property
    def response_buckets(self) -> dict[str, int]:
        """First responses per bucket (≤5, 5–15, 15–30, 30–60, 60–180, >180 s)."""
        bins = self.bins("first_response")
        out: dict[str, int] = {}
        start = 0
        for name, edge in ms.RESPONSE_BUCKETS:
            end = ms.BINS if edge is None else ms.EDGES.index(edge) + 1
            out[name] = sum(bins[start:end])
            start = end
        return out

    @property
    def counts_conversations(self) -> bool:
        """Whether any measure but attendance's is set (agents' status time and sign-ins
        are facts with no queue and no channel)."""
        return any(v for i, v in enumerate(self.values) if i not in _ATTENDANCE)

    @property
    def transfers(self) -> int:
        """Transfers completed (to an agent, a queue or a department), counted once."""
        return self["transfers_out"]

    @property
    def rating_average(self) -> float | None:
        """The mean score of the ratings given (1 to 5); None with none."""
        return self["rating_points"] / self["ratings"] if self["ratings"] else None

    @property
    def rating_scores(self) -> dict[int, int]:
        """How many ratings gave each score, 1 to 5."""
        return {score: self[f"rating_{score}"] for score in ms.SCORES}


ZERO: Final = Figures((0,) * ms.WIDTH)


def add(rows: Sequence[Sequence[int]]) -> Figures:
    """Rollup vectors as one: added up element by element (extremes by min or max)."""
    if not rows:
        return ZERO
    out = [sum(column) for column in zip(*rows, strict=True)]
    for i, how in ms.MERGE.items():
        found = [row[i] for row in rows if row[i]]
        out[i] = (min(found) if how == "min" else max(found)) if found else 0
    return Figures(tuple(out))


def as_dict(f: Figures) -> Mapping[str, float | int | None]:
    """Every figure flat (for exports and ``--json``): counts, the service level, the
    first-response buckets, and each distribution's count, mean and percentiles (seconds)."""
    out: dict[str, float | int | None] = {
        name: f[name] for name in ms.COUNTERS if ms.INDEX[name] not in _ATTENDANCE
    }
    out["transfers"] = f.transfers
    out["service_level"] = f.service_level
    out.update({f"first_response_{k}": v for k, v in f.response_buckets.items()})
    for name, d in (("wait", f.wait), ("first_response", f.first_response), ("handle", f.handle)):
        out[f"{name}_count"] = d.count
        out[f"{name}_mean_s"] = d.mean
        out[f"{name}_p50_s"] = d.p50
        out[f"{name}_p90_s"] = d.p90
        out[f"{name}_p95_s"] = d.p95
    out["rating_average"] = f.rating_average
    return out
