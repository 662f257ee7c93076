"""Business hours: is a queue open, on a break or closed at an instant, and when that changes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.routing.errors import InvalidArgument
from core.routing.model import BusinessHours, TimeRange

_MIDNIGHT = dt.time(0, 0)
_HORIZON_DAYS = 370
"""How far ahead to look for the next change (a year of holidays, then give up)."""


class HoursStatus(StrEnum):
    OPEN = "open"
    BREAK = "break"
    CLOSED = "closed"


def validate_zone(name: str) -> None:
    """``InvalidArgument`` unless ``name`` is an IANA time zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"unknown time zone {name!r}") from exc


def validate_hours(hours: BusinessHours) -> None:
    validate_zone(hours.timezone)
    for table in (hours.weekly, hours.breaks):
        for weekday, ranges in table.items():
            if not 0 <= weekday <= 6:
                raise InvalidArgument(f"weekday {weekday} is not 0 (Monday) to 6 (Sunday)")
            for r in ranges:
                if r.end != _MIDNIGHT and r.end <= r.start:
                    raise InvalidArgument(f"time range {r.start}-{r.end} ends before it starts")


def _contains(r: TimeRange, t: dt.time) -> bool:
    return r.start <= t and (r.end == _MIDNIGHT or t < r.end)


def status_at(hours: BusinessHours | None, at: float) -> HoursStatus:
    if hours is None:
        return HoursStatus.OPEN
    local = dt.datetime.fromtimestamp(at, ZoneInfo(hours.timezone))
    if local.date() in hours.holidays:
        return HoursStatus.CLOSED
    t, weekday = local.time(), local.weekday()
    if not any(_contains(r, t) for r in hours.weekly.get(weekday, ())):
        return HoursStatus.CLOSED
    if any(_contains(r, t) for r in hours.breaks.get(weekday, ())):
        return HoursStatus.BREAK
    return HoursStatus.OPEN


def next_change(hours: BusinessHours | None, at: float) -> float | None:
    """The first instant after ``at`` at which ``status_at`` differs, or None if it never does
    within about a year (always open, or always closed)."""
    if hours is None:
        return None
    zone = ZoneInfo(hours.timezone)
    current = status_at(hours, at)
    day = dt.datetime.fromtimestamp(at, zone).date()
    for offset in range(_HORIZON_DAYS):
        date = day + dt.timedelta(days=offset)
        weekday = date.weekday()
        edges = {_MIDNIGHT}
        for r in (*hours.weekly.get(weekday, ()), *hours.breaks.get(weekday, ())):
            edges.update((r.start, r.end))
        instants = {dt.datetime.combine(date, edge, tzinfo=zone).timestamp() for edge in edges}
        instants.update(_offset_changes(zone, date))
        for instant in sorted(instants):
            if instant > at and status_at(hours, instant) is not current:
                return instant
    return None


def _offset_changes(zone: ZoneInfo, date: dt.date) -> list[float]:
    """The instant a daylight-saving change happens on ``date``, found by bisection: an edge
    inside a skipped hour takes effect right then, not at its nominal local time."""
    start = dt.datetime.combine(date, _MIDNIGHT, tzinfo=zone).timestamp()
    end = dt.datetime.combine(date + dt.timedelta(days=1), _MIDNIGHT, tzinfo=zone).timestamp()

    def utc_offset(instant: float) -> dt.timedelta | None:
        return dt.datetime.fromtimestamp(instant, zone).utcoffset()

    if utc_offset(start) == utc_offset(end):
        return []
    low, high = start, end
    while high - low > 1:
        middle = (low + high) // 2
        if utc_offset(middle) == utc_offset(start):
            low = middle
        else:
            high = middle
    return [high]
