"""Reports' pure parts: bins and their edges, percentiles, the tenant's buckets and periods
(half-hour zones, daylight saving), queries' checks and the rows that answer them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.reports import measures as ms
from core.reports.calendar import Buckets, Grouping, periods, snap, whole_months
from core.reports.figures import Figures, percentile
from core.reports.query import Filter, Kind, ReportQuery, problems, rows_for

UTC = dt.UTC


def test_an_edge_belongs_to_the_bin_below_it() -> None:
    assert ms.bin_of(0) == 0
    assert ms.bin_of(5) == ms.EDGES.index(5)
    assert ms.bin_of(5.000001) == ms.EDGES.index(5) + 1
    assert ms.bin_of(10**9) == ms.BINS - 1
    buckets = Figures(_with_bins("first_response", [2, 5, 5.5, 15, 15.1, 30, 60, 61, 180, 181]))
    assert buckets.response_buckets == {
        "within_5s": 2,
        "within_15s": 2,
        "within_30s": 2,
        "within_60s": 1,
        "within_180s": 2,
        "over_180s": 1,
    }


def _with_bins(histogram: str, values: list[float]) -> tuple[int, ...]:
    vector = [0] * ms.WIDTH
    for value in values:
        vector[ms.histogram_start(histogram) + ms.bin_of(value)] += 1
    return tuple(vector)


def test_percentiles_interpolate_inside_the_bin() -> None:
    bins = [0] * ms.BINS
    bins[ms.bin_of(20)] = 1  # (15, 20]
    assert percentile(bins, 0.5) == 17.5
    assert percentile(bins, 1.0) == 20.0
    assert percentile([0] * ms.BINS, 0.5) is None
    bins = [0] * ms.BINS
    bins[-1] = 3  # over a day: shown as a day
    assert percentile(bins, 0.95) == ms.EDGES[-1]


@given(st.lists(st.floats(min_value=0, max_value=80_000), min_size=1, max_size=50))
def test_a_percentile_lies_in_the_bin_of_the_true_value(values: list[float]) -> None:
    bins = [0] * ms.BINS
    for value in values:
        bins[ms.bin_of(value)] += 1
    ordered = sorted(values)
    for p in (0.5, 0.9, 0.95):
        estimate = percentile(bins, p)
        assert estimate is not None
        true = ordered[max(0, -(-round(p * len(values) * 1e9) // 10**9) - 1)]
        i = ms.bin_of(true)
        assert ms.lower_edge(i) <= estimate <= ms.upper_edge(i)


def test_half_hour_zones_bucket_by_the_local_hour_and_day() -> None:
    kolkata = Buckets("Asia/Kolkata")  # +5:30
    at = dt.datetime(2026, 1, 5, 23, 45, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()
    hour, day, month = kolkata.of(at)
    assert dt.datetime.fromtimestamp(hour, UTC) == dt.datetime(2026, 1, 5, 17, 30, tzinfo=UTC)
    assert dt.datetime.fromtimestamp(day, UTC) == dt.datetime(2026, 1, 4, 18, 30, tzinfo=UTC)
    assert dt.datetime.fromtimestamp(month, UTC) == dt.datetime(2025, 12, 31, 18, 30, tzinfo=UTC)
    kathmandu = Buckets("Asia/Kathmandu")  # +5:45
    hour, _, _ = kathmandu.of(dt.datetime(2026, 1, 5, 0, 20, tzinfo=UTC).timestamp())
    # 00:20 UTC is 06:05 there: the hour began at 06:00, 00:15 UTC
    assert dt.datetime.fromtimestamp(hour, UTC) == dt.datetime(2026, 1, 5, 0, 15, tzinfo=UTC)


def test_a_daylight_saving_day_has_23_hours_and_its_periods_follow_the_clock() -> None:
    zone = "Europe/Berlin"  # 2026-03-29: 02:00 becomes 03:00
    tz = ZoneInfo(zone)
    start, end = snap(
        dt.datetime(2026, 3, 29, 0, 0, tzinfo=tz),
        dt.datetime(2026, 3, 30, 0, 0, tzinfo=tz),
        Grouping.HOUR,
        zone,
    )
    hours = periods(start, end, Grouping.HOUR, zone)
    assert len(hours) == 23
    assert [p.label for p in hours[1:3]] == ["2026-03-29 01:00", "2026-03-29 03:00"]
    days = periods(start, end, Grouping.DAY, zone)
    assert [(p.label, (p.end - p.start).total_seconds()) for p in days] == [
        ("2026-03-29", 23 * 3600)
    ]


def test_whole_months_inside_a_range() -> None:
    zone = "Asia/Bangkok"
    tz = ZoneInfo(zone)
    inside = whole_months(
        dt.datetime(2025, 12, 2, tzinfo=tz), dt.datetime(2026, 12, 2, tzinfo=tz), zone
    )
    assert inside == (dt.datetime(2026, 1, 1, tzinfo=tz), dt.datetime(2026, 12, 1, tzinfo=tz))
    assert (
        whole_months(dt.datetime(2026, 1, 2, tzinfo=tz), dt.datetime(2026, 2, 3, tzinfo=tz), zone)
        is None
    )


def test_ranges_snap_outwards_and_periods_cut_to_them() -> None:
    zone = "Asia/Bangkok"
    tz = ZoneInfo(zone)
    start, end = snap(
        dt.datetime(2026, 1, 7, 10, 30, tzinfo=tz),
        dt.datetime(2026, 2, 2, 1, 0, tzinfo=tz),
        Grouping.WEEK,
        zone,
    )
    assert start == dt.datetime(2026, 1, 7, tzinfo=tz)
    assert end == dt.datetime(2026, 2, 3, tzinfo=tz)
    weeks = periods(start, end, Grouping.WEEK, zone)
    assert [p.label for p in weeks] == ["2026-W02", "2026-W03", "2026-W04", "2026-W05", "2026-W06"]
    assert weeks[0].start == start  # the first week is cut to the range
    months = periods(start, end, Grouping.MONTH, zone)
    assert [p.label for p in months] == ["2026-01", "2026-02"]
    assert months[1].start == dt.datetime(2026, 2, 1, tzinfo=tz)


def _query(**options: object) -> ReportQuery:
    base: dict[str, object] = {
        "kind": Kind.OVERVIEW,
        "start": dt.datetime(2026, 1, 1, tzinfo=UTC),
        "end": dt.datetime(2026, 1, 2, tzinfo=UTC),
    }
    base.update(options)
    return ReportQuery(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        (_query(), set()),
        (_query(end=dt.datetime(2025, 12, 31, tzinfo=UTC)), {"end_time"}),
        (_query(end=dt.datetime(2028, 1, 3, tzinfo=UTC)), {"end_time"}),
        (_query(end=dt.datetime(2026, 3, 1, tzinfo=UTC), grouping=Grouping.HOUR), {"group_by"}),
        (_query(filter=Filter(tag="vip", department="sales")), {"filter.department"}),
        (_query(filter=Filter(tag="vip"), grouping=Grouping.HOUR), {"filter.tag"}),
    ],
)
def test_problems(query: ReportQuery, fields: set[str]) -> None:
    assert set(problems(query)) == fields


def test_the_fewest_rows_that_hold_the_dimensions() -> None:
    assert rows_for(_query()) == rows_for(_query(grouping=Grouping.MONTH))
    assert (rows_for(_query()).grain, rows_for(_query()).level) == ("d", "all")
    assert rows_for(_query(grouping=Grouping.HOUR)).grain == "h"
    assert rows_for(_query(kind=Kind.QUEUES, filter=Filter(channels=("line",)))).level == "qc"
    assert rows_for(_query(kind=Kind.AGENTS)).level == "a"
    assert rows_for(_query(kind=Kind.AGENTS, filter=Filter(queues=("q",)))).level == "qac"
    assert rows_for(_query(filter=Filter(tag="vip"))).label == "vip"
    assert rows_for(_query(filter=Filter(department="sales"))).level == "dept_all"
    assert rows_for(_query(kind=Kind.AGENTS, filter=Filter(department="d"))).level == "dept_a"
    assert rows_for(_query(kind=Kind.QUEUES, filter=Filter(tag="vip"))).level == "tag_qc"
