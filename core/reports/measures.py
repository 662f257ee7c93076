"""What a rollup row counts: the measures, in one fixed order, and the histograms' bins.

A rollup row is a vector of integers, ``MEASURES`` in order: counters, sums of milliseconds
and three histograms (wait, first response, handle time) over the fixed bin edges ``EDGES``.
Rows add up: any period's figures are the element-wise sum of its rows, so a day, a week or a
month is the sum of its hours (or days) and every percentile comes from the summed bins.

Bin ``i`` holds the values ``v`` with ``EDGES[i-1] < v <= EDGES[i]`` (seconds; bin 0 is
``0 <= v <= 1``, the last bin everything above a day): an edge belongs to the bin below it,
so exactly 5 s counts as "within 5 s". The first-response buckets of the reports (≤5, 5–15,
15–30, 30–60, 60–180, >180 s) are sums of whole bins (``RESPONSE_BUCKETS``).

Ratings are counted when they are given (``ConversationRated``), with the conversation's
queue, channel, tags and last agent: ``ratings``, ``rating_points`` (the scores' sum) and
``rating_1`` .. ``rating_5`` (how many of each score).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

EDGES: Final[tuple[float, ...]] = (
    1,
    2,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    45,
    60,
    90,
    120,
    180,
    240,
    300,
    450,
    600,
    900,
    1200,
    1800,
    2700,
    3600,
    7200,
    14400,
    28800,
    86400,
)
"""Upper edges (seconds, inclusive) of the histograms' bins; one more bin holds the rest."""
BINS: Final = len(EDGES) + 1

COUNTERS: Final[tuple[str, ...]] = (
    # conversations
    "started",
    "bot_started",
    "bot_only",
    "bot_handed_off",
    "bot_unanswered",
    "handed",
    # waits in queues
    "queued",
    "answered",
    "answered_in_sl",
    "abandoned",
    "abandoned_in_sl",
    "left_message",
    "overflowed",
    "follow_ups",
    # ends
    "ended",
    "resolved",
    "spam",
    "ignored",
    # agents
    "offered",
    "offers_missed",
    "offers_rejected",
    "assigned",
    "handled",
    "transfers_out",
    "transfers_in",
    # messages
    "customer_messages",
    "agent_messages",
    "bot_messages",
    "canned_replies",
    # ratings (RateConversation): how many, the scores' sum, and how many of each score
    "ratings",
    "rating_points",
    "rating_1",
    "rating_2",
    "rating_3",
    "rating_4",
    "rating_5",
    # attendance
    "sign_ins",
)
SUMS: Final[tuple[str, ...]] = (
    "wait_ms",
    "first_response_ms",
    "handle_ms",
    "online_ms",
    "away_ms",
    "break_ms",
)
"""Exact sums in milliseconds: of the histograms' values (for means), and of agents' time per
status (closed intervals; a status still going is added when reading)."""
EXTREMES: Final[dict[str, str]] = {"first_sign_in_ms": "min", "last_online_ms": "max"}
"""Measures that merge by min or max instead of adding up (epoch milliseconds; 0 is none)."""
HISTOGRAMS: Final[tuple[str, ...]] = ("wait", "first_response", "handle")


def bin_columns(histogram: str) -> tuple[str, ...]:
    return tuple(f"{histogram}_b{i:02d}" for i in range(BINS))


MEASURES: Final[tuple[str, ...]] = (
    *COUNTERS,
    *SUMS,
    *(column for h in HISTOGRAMS for column in bin_columns(h)),
    *EXTREMES,
)
"""Every measure column, in the order of a rollup vector."""
WIDTH: Final = len(MEASURES)
INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(MEASURES)}
BIG: Final = frozenset((*SUMS, *EXTREMES))
"""Measures stored as bigint (the rest are integers)."""
MERGE: Final[dict[int, str]] = {INDEX[name]: how for name, how in EXTREMES.items()}
"""Vector index -> ``min`` or ``max`` for the measures that do not add up."""


def combine(index: int, mine: int, theirs: int) -> int:
    """Two values of one measure as one: added up, or the min or max of those set (not 0)."""
    how = MERGE.get(index)
    if how is None:
        return mine + theirs
    if not mine or not theirs:
        return mine or theirs
    return min(mine, theirs) if how == "min" else max(mine, theirs)


def sql_merge(name: str, mine: str, theirs: str) -> str:
    """SQL adding up two values of ``name`` (NULL is zero), or taking their min or max."""
    how = EXTREMES.get(name)
    if how == "min":
        return f"least({mine}, {theirs})"
    if how == "max":
        return f"greatest({mine}, {theirs})"
    return f"coalesce({mine} + {theirs}, {mine}, {theirs})"


def sql_aggregate(name: str) -> str:
    """The SQL aggregate adding up a column of ``name`` over rows."""
    return f"{EXTREMES.get(name, 'sum')}({name})"


def histogram_start(histogram: str) -> int:
    """The vector index of the histogram's first bin."""
    return INDEX[f"{histogram}_b00"]


def bin_of(seconds: float) -> int:
    """The bin of a duration: the first whose edge is at least ``seconds``."""
    return bisect_left(EDGES, seconds)


def lower_edge(i: int) -> float:
    return 0.0 if i == 0 else EDGES[i - 1]


def upper_edge(i: int) -> float:
    """The bin's upper edge; the last bin's is taken as its lower edge (no bound above)."""
    return EDGES[i] if i < len(EDGES) else EDGES[-1]


SCORES: Final = (1, 2, 3, 4, 5)
"""A rating's possible scores; ``rating_{score}`` counts each."""

RESPONSE_BUCKETS: Final[tuple[tuple[str, float | None], ...]] = (
    ("within_5s", 5),
    ("within_15s", 15),
    ("within_30s", 30),
    ("within_60s", 60),
    ("within_180s", 180),
    ("over_180s", None),
)
"""The first-response buckets: (name, upper edge in seconds, None for the rest). Each bucket
starts above the previous one's edge: 5–15 s means more than 5 and at most 15."""


def _check_buckets() -> None:
    for _, edge in RESPONSE_BUCKETS:
        if edge is not None and edge not in EDGES:
            raise AssertionError(f"{edge} s is not a bin edge")


_check_buckets()
