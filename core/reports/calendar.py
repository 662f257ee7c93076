"""Time in the tenant's zone: the buckets rollups are stored in, and the periods reports show.

Storage grain: rollups are kept per **local hour**, **local day** and **local month** of the
tenant's time zone, each stored as the UTC instant the hour, day or month begins. For zones
whose offset is a whole number of hours (nearly all) a local hour is exactly a UTC hour; for
zones with half- or quarter-hour offsets (Asia/Kolkata +5:30, Asia/Kathmandu +5:45) it is the
hour on the local clock, so days, weeks and months are still whole sums of stored buckets and
nothing is split or estimated. A day across a daylight-saving change has 23 or 25 hours.

Reports group by hour, day, week (ISO: from Monday) or month in the same zone. A range is
snapped outwards to the grouping's grid: whole hours for hours, whole local days otherwise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC
SLOT = 900
"""Every zone's offset is a multiple of 15 minutes, so a 15-minute slot lies in one local hour."""


class Grouping(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@lru_cache(maxsize=256)
def zone(name: str) -> dt.tzinfo:
    """The zone of an IANA name; ``""`` is UTC. ``ValueError`` for an unknown name."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def valid_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True


class Buckets:
    """The hour and day buckets of instants in one zone, cached per 15-minute slot."""

    __slots__ = ("_cache", "_zone", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._zone = zone(name)
        self._cache: dict[int, tuple[float, float, float]] = {}

    def of(self, at: float) -> tuple[float, float, float]:
        """(start of the local hour, of the local day, of the local month) holding ``at``, as
        epoch seconds."""
        slot = int(at // SLOT)
        found = self._cache.get(slot)
        if found is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            local = dt.datetime.fromtimestamp(slot * SLOT, self._zone)
            hour = local.replace(minute=0, second=0, microsecond=0)
            day = day_start(local)
            month = day_start(day.replace(day=1))
            found = (hour.timestamp(), day.timestamp(), month.timestamp())
            self._cache[slot] = found
        return found

    def __getstate__(self) -> str:
        return self.name

    def __setstate__(self, name: str) -> None:
        self.name = name
        self._zone = zone(name)
        self._cache = {}

    def __repr__(self) -> str:
        return f"<Buckets {self.name or 'UTC'}>"


def day_start(local: dt.datetime) -> dt.datetime:
    """Local midnight of ``local``'s day (aware, in its zone)."""
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    # a zone that skips midnight (a daylight-saving change at 00:00) starts the day later
    return dt.datetime.fromtimestamp(midnight.timestamp(), local.tzinfo)


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in UTC, and how people call it in the zone (``2026-01-05``)."""

    start: dt.datetime
    end: dt.datetime
    label: str


def _floor(at: dt.datetime, grouping: Grouping, tz: dt.tzinfo) -> dt.datetime:
    local = at.astimezone(tz)
    if grouping is Grouping.HOUR:
        return local.replace(minute=0, second=0, microsecond=0)
    day = day_start(local)
    if grouping is Grouping.WEEK:
        day = day_start(day - dt.timedelta(days=day.weekday()))
    elif grouping is Grouping.MONTH:
        day = day_start(day.replace(day=1))
    return day


def _next(start: dt.datetime, grouping: Grouping, tz: dt.tzinfo) -> dt.datetime:
    """The start of the period after the one starting at ``start`` (local, aware)."""
    if grouping is Grouping.HOUR:
        return (start.astimezone(UTC) + dt.timedelta(hours=1)).astimezone(tz)
    naive = start.replace(tzinfo=None)
    if grouping is Grouping.DAY:
        naive = naive + dt.timedelta(days=1)
    elif grouping is Grouping.WEEK:
        naive = naive + dt.timedelta(days=7)
    else:
        naive = naive.replace(year=naive.year + naive.month // 12, month=naive.month % 12 + 1)
    return day_start(naive.replace(tzinfo=tz))


def _label(start: dt.datetime, grouping: Grouping) -> str:
    if grouping is Grouping.HOUR:
        return start.strftime("%Y-%m-%d %H:00")
    if grouping is Grouping.DAY:
        return start.strftime("%Y-%m-%d")
    if grouping is Grouping.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return start.strftime("%Y-%m")


def whole_months(
    start: dt.datetime, end: dt.datetime, zone_name: str
) -> tuple[dt.datetime, dt.datetime] | None:
    """The whole local months inside ``[start, end)`` (which are local days) as ``[first,
    last)``, or None when there is none: what monthly rows can answer."""
    tz = zone(zone_name)
    first = _floor(start, Grouping.MONTH, tz)
    if first.astimezone(UTC) < start:
        first = _next(first, Grouping.MONTH, tz)
    last = _floor(end, Grouping.MONTH, tz)
    if last.astimezone(UTC) <= first.astimezone(UTC):
        return None
    return first.astimezone(UTC), last.astimezone(UTC)


def snap(
    start: dt.datetime, end: dt.datetime, grouping: Grouping, zone_name: str
) -> tuple[dt.datetime, dt.datetime]:
    """The range widened to whole hours (HOUR) or whole local days (the others), in UTC."""
    tz = zone(zone_name)
    grid = Grouping.HOUR if grouping is Grouping.HOUR else Grouping.DAY
    first = _floor(start, grid, tz)
    last = _floor(end, grid, tz)
    if last.astimezone(UTC) < end.astimezone(UTC):
        last = _next(last, grid, tz)
    return first.astimezone(UTC), last.astimezone(UTC)


def periods(
    start: dt.datetime, end: dt.datetime, grouping: Grouping, zone_name: str
) -> list[Period]:
    """The periods of ``grouping`` covering ``[start, end)`` (already snapped), in order; the
    first and last may be cut to the range (a week that starts before it)."""
    tz = zone(zone_name)
    out: list[Period] = []
    current = _floor(start, grouping, tz)
    while current.astimezone(UTC) < end:
        following = _next(current, grouping, tz)
        out.append(
            Period(
                max(current.astimezone(UTC), start),
                min(following.astimezone(UTC), end),
                _label(current, grouping),
            )
        )
        current = following
    return out
