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


def validate_hours(hours: BusinessHours) -> None:
    try:
        ZoneInfo(hours.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"unknown time zone {hours.timezone!r}") from exc
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
        for edge in sorted(edges):
            instant = dt.datetime.combine(date, edge, tzinfo=zone).timestamp()
            if instant > at and status_at(hours, instant) is not current:
                return instant
    return None
