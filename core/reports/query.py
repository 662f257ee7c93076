"""What a report asks for, checked whole, and which rollup rows answer it.

``ReportQuery`` is a kind (overview, agents, queues, channels), a range ``[start, end)``, a
grouping (hour, day, week, month in the tenant's zone) and a filter (queues, agents, channels:
any of; one department; one tag). ``problems`` lists every field that is wrong (an empty range,
one longer than ``MAX_RANGE``, hours over more than ``MAX_HOURS_RANGE``, a tag with a
department, a tag or department by the hour, which only daily rows carry); ``rows_for`` picks
the level of detail that holds the query's dimensions with the fewest rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from core.reports.calendar import Grouping

MAX_RANGE: Final = dt.timedelta(days=731)
"""Two years (a leap day included)."""
MAX_HOURS_RANGE: Final = dt.timedelta(days=31)
"""Grouping by the hour covers at most a month (744 periods)."""


class Kind(StrEnum):
    OVERVIEW = "overview"
    AGENTS = "agents"
    QUEUES = "queues"
    CHANNELS = "channels"


GROUPED_BY: Final[dict[Kind, tuple[str, ...]]] = {
    Kind.OVERVIEW: (),
    Kind.AGENTS: ("agent",),
    Kind.QUEUES: ("queue",),
    Kind.CHANNELS: ("channel",),
}
"""The dimension each report shows one row per (besides the period)."""


@dataclass(frozen=True, slots=True)
class Filter:
    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    department: str = ""
    tag: str = ""

    @property
    def dimensions(self) -> frozenset[str]:
        """The rollup dimensions the filter reads."""
        found = {
            name
            for name, values in (
                ("queue", self.queues),
                ("agent", self.agents),
                ("channel", self.channels),
            )
            if values
        }
        return frozenset(found)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    kind: Kind
    start: dt.datetime
    end: dt.datetime
    grouping: Grouping = Grouping.DAY
    filter: Filter = field(default_factory=Filter)


class BadQuery(ValueError):
    """A query refused whole: ``violations`` maps each bad field to what is wrong with it."""

    def __init__(self, violations: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in violations.items()))
        self.violations = violations


def problems(query: ReportQuery) -> dict[str, str]:
    """Every field that is wrong, by field path (empty: the query is good)."""
    out: dict[str, str] = {}
    if query.end <= query.start:
        out["end_time"] = "the range ends before it starts (or is empty)"
    elif query.end - query.start > MAX_RANGE:
        out["end_time"] = "the range spans more than two years"
    elif query.grouping is Grouping.HOUR and query.end - query.start > MAX_HOURS_RANGE:
        out["group_by"] = "grouping by the hour covers at most 31 days"
    f = query.filter
    if f.tag and f.department:
        out["filter.department"] = "filter by a tag or by a department, not both"
    elif (f.tag or f.department) and query.grouping is Grouping.HOUR:
        which = "filter.tag" if f.tag else "filter.department"
        out[which] = "tags and departments are counted per day: group by day, week or month"
    return out


def check(query: ReportQuery) -> ReportQuery:
    """``query`` if it is good, else ``BadQuery`` naming every bad field."""
    found = problems(query)
    if found:
        raise BadQuery(found)
    return query


@dataclass(frozen=True, slots=True)
class Rows:
    """Which rollup rows answer a query: grain, level and label."""

    grain: str
    level: str
    label: str = ""


def rows_for(query: ReportQuery) -> Rows:
    """The level of detail holding the query's dimensions with the fewest rows."""
    grain = "h" if query.grouping is Grouping.HOUR else "d"
    f = query.filter
    needed = f.dimensions | frozenset(GROUPED_BY[query.kind])
    if not needed:
        level = "all"
    elif needed <= {"queue", "channel"}:
        level = "qc"
    elif needed == {"agent"}:
        level = "a"
    else:
        level = "qac"
    if f.tag:
        return Rows("d", labelled("tag", level), f.tag)
    if f.department:
        return Rows("d", labelled("dept", level), f.department)
    return Rows(grain, level)


def labelled(kind: str, level: str) -> str:
    """The tag or department rows (``kind``) of a level: ``tag_qc``, ``dept_a``, ``tag``..."""
    return kind if level == "qac" else f"{kind}_{level}"
