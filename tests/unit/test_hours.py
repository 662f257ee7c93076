"""Business hours: open, on a break or closed at an instant, in the queue's own time zone."""

from __future__ import annotations

import datetime as dt

import pytest

from core.routing.errors import InvalidArgument
from core.routing.hours import HoursStatus, next_change, status_at, validate_hours
from core.routing.model import BusinessHours, TimeRange

OPEN, BREAK, CLOSED = HoursStatus.OPEN, HoursStatus.BREAK, HoursStatus.CLOSED
WEEKDAYS = range(5)
ALL_WEEK = range(7)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """A UTC instant as seconds since the epoch: utc(2026, 1, 5, 9) is 2026-01-05 09:00Z."""
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()


def hm(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def ranges(*spans: str) -> tuple[TimeRange, ...]:
    """ranges("09:00-18:00", "20:00-00:00")"""
    return tuple(TimeRange(hm(s.split("-")[0]), hm(s.split("-")[1])) for s in spans)


def hours(
    timezone: str = "UTC",
    days: range | tuple[int, ...] = WEEKDAYS,
    open_: tuple[str, ...] = ("09:00-18:00",),
    breaks: tuple[str, ...] = (),
    holidays: tuple[dt.date, ...] = (),
) -> BusinessHours:
    return BusinessHours(
        timezone=timezone,
        weekly={d: ranges(*open_) for d in days},
        breaks={d: ranges(*breaks) for d in days} if breaks else {},
        holidays=frozenset(holidays),
    )


# 2026-01-05 is a Monday; Hong Kong is UTC+8 all year.
HK = hours("Asia/Hong_Kong", breaks=("12:00-13:00",))


# --- status_at --------------------------------------------------------------------------------


def test_no_hours_means_always_open() -> None:
    assert status_at(None, utc(2026, 1, 4, 3)) is OPEN


def test_status_is_read_in_the_queue_time_zone() -> None:
    assert status_at(HK, utc(2026, 1, 5, 0, 59)) is CLOSED  # 08:59 in Hong Kong
    assert status_at(HK, utc(2026, 1, 5, 1)) is OPEN  # 09:00 in Hong Kong
    assert status_at(HK, utc(2026, 1, 5, 9, 59)) is OPEN  # 17:59
    assert status_at(HK, utc(2026, 1, 5, 10)) is CLOSED  # 18:00: the end is exclusive


def test_weekday_is_the_local_weekday() -> None:
    # Sunday 17:00 UTC is already Monday 01:00 in Hong Kong.
    mondays_only = hours("Asia/Hong_Kong", days=(0,), open_=("00:00-00:00",))

    assert status_at(mondays_only, utc(2026, 1, 4, 17)) is OPEN
    assert status_at(mondays_only, utc(2026, 1, 4, 15, 59)) is CLOSED


def test_days_without_ranges_are_closed() -> None:
    saturday_noon_hk = utc(2026, 1, 10, 4)
    assert status_at(HK, saturday_noon_hk) is CLOSED


def test_a_break_inside_opening_hours_is_a_break() -> None:
    assert status_at(HK, utc(2026, 1, 5, 3, 59)) is OPEN  # 11:59
    assert status_at(HK, utc(2026, 1, 5, 4)) is BREAK  # 12:00
    assert status_at(HK, utc(2026, 1, 5, 5)) is OPEN  # 13:00


def test_a_break_outside_opening_hours_is_closed() -> None:
    evening_break = hours(breaks=("19:00-20:00",))
    assert status_at(evening_break, utc(2026, 1, 5, 19, 30)) is CLOSED


def test_several_ranges_on_one_day() -> None:
    split = hours(open_=("09:00-12:00", "14:00-18:00"))

    assert status_at(split, utc(2026, 1, 5, 11)) is OPEN
    assert status_at(split, utc(2026, 1, 5, 13)) is CLOSED
    assert status_at(split, utc(2026, 1, 5, 15)) is OPEN


def test_holidays_are_closed_all_day_in_local_dates() -> None:
    holiday = hours("Asia/Hong_Kong", holidays=(dt.date(2026, 1, 5),))

    assert status_at(holiday, utc(2026, 1, 5, 2)) is CLOSED  # Monday 10:00, a holiday
    assert status_at(holiday, utc(2026, 1, 6, 2)) is OPEN  # Tuesday 10:00


def test_an_end_of_midnight_runs_to_the_end_of_the_day() -> None:
    evenings = hours(open_=("20:00-00:00",))

    assert status_at(evenings, utc(2026, 1, 5, 19, 59)) is CLOSED
    assert status_at(evenings, utc(2026, 1, 5, 20)) is OPEN
    assert status_at(evenings, utc(2026, 1, 5, 23, 59, 59)) is OPEN
    assert status_at(evenings, utc(2026, 1, 10, 0, 30)) is CLOSED  # Saturday


def test_midnight_to_midnight_is_open_all_day() -> None:
    always = hours(days=ALL_WEEK, open_=("00:00-00:00",))

    for hour in (0, 6, 12, 23):
        assert status_at(always, utc(2026, 1, 7, hour)) is OPEN


def test_london_hours_follow_daylight_saving_time() -> None:
    london = hours("Europe/London")

    # Before the change (GMT) 09:00 local is 09:00Z; after it (BST) 09:00 local is 08:00Z.
    assert status_at(london, utc(2026, 3, 27, 8, 30)) is CLOSED
    assert status_at(london, utc(2026, 3, 27, 9)) is OPEN
    assert status_at(london, utc(2026, 3, 30, 7, 59)) is CLOSED
    assert status_at(london, utc(2026, 3, 30, 8)) is OPEN


def test_london_closes_at_local_six_in_summer() -> None:
    london = hours("Europe/London")

    assert status_at(london, utc(2026, 3, 30, 16, 59)) is OPEN  # 17:59 BST
    assert status_at(london, utc(2026, 3, 30, 17)) is CLOSED  # 18:00 BST


# --- next_change ------------------------------------------------------------------------------


def test_next_change_is_the_next_opening_when_closed() -> None:
    monday_morning_hk = utc(2026, 1, 5, 0)  # 08:00 local
    assert next_change(HK, monday_morning_hk) == utc(2026, 1, 5, 1)


def test_next_change_steps_through_a_break() -> None:
    at = utc(2026, 1, 5, 2)  # 10:00 Hong Kong

    to_break = next_change(HK, at)
    assert to_break == utc(2026, 1, 5, 4)  # 12:00
    back = next_change(HK, to_break)
    assert back == utc(2026, 1, 5, 5)  # 13:00
    assert next_change(HK, back) == utc(2026, 1, 5, 10)  # 18:00


def test_next_change_is_strictly_after_the_instant() -> None:
    opening = utc(2026, 1, 5, 1)
    assert next_change(HK, opening) == utc(2026, 1, 5, 4)


def test_next_change_skips_edges_that_change_nothing() -> None:
    back_to_back = hours(open_=("09:00-12:00", "12:00-18:00"))
    assert next_change(back_to_back, utc(2026, 1, 5, 10)) == utc(2026, 1, 5, 18)


def test_next_change_over_the_weekend() -> None:
    friday_evening = utc(2026, 1, 9, 19)
    assert next_change(hours(), friday_evening) == utc(2026, 1, 12, 9)


def test_next_change_skips_holidays() -> None:
    monday_holiday = hours(holidays=(dt.date(2026, 1, 12),))
    assert next_change(monday_holiday, utc(2026, 1, 9, 19)) == utc(2026, 1, 13, 9)


def test_next_change_of_an_end_of_midnight_is_the_next_midnight() -> None:
    evenings = hours(days=(0,), open_=("20:00-00:00",))
    assert next_change(evenings, utc(2026, 1, 5, 21)) == utc(2026, 1, 6, 0)


def test_next_change_runs_across_midnight_when_the_next_day_opens_at_midnight() -> None:
    shift = BusinessHours(weekly={0: ranges("20:00-00:00"), 1: ranges("00:00-06:00")})

    assert next_change(shift, utc(2026, 1, 5, 21)) == utc(2026, 1, 6, 6)


def test_next_change_across_the_spring_daylight_saving_change() -> None:
    london = hours("Europe/London")

    # Friday 27 March closes at 18:00 GMT; Monday 30 March opens at 09:00 BST = 08:00Z.
    assert next_change(london, utc(2026, 3, 27, 12)) == utc(2026, 3, 27, 18)
    assert next_change(london, utc(2026, 3, 27, 18)) == utc(2026, 3, 30, 8)


def test_next_change_across_the_autumn_daylight_saving_change() -> None:
    london = hours("Europe/London")

    # Friday 23 October closes at 18:00 BST = 17:00Z; Monday 26 October opens at 09:00 GMT.
    assert next_change(london, utc(2026, 10, 23, 12)) == utc(2026, 10, 23, 17)
    assert next_change(london, utc(2026, 10, 23, 17)) == utc(2026, 10, 26, 9)


def test_next_change_finds_an_opening_inside_the_skipped_daylight_saving_hour() -> None:
    """On 29 March 2026 London skips 01:00-02:00 local. Hours opening at 01:30 are open from
    the jump itself (01:00Z, 02:00 BST), which is when status_at first differs."""
    sunday = hours("Europe/London", days=(6,), open_=("01:30-05:00",))
    before = utc(2026, 3, 29, 0, 30)

    assert status_at(sunday, utc(2026, 3, 29, 1)) is OPEN
    assert next_change(sunday, before) == utc(2026, 3, 29, 1)


def test_next_change_is_none_without_hours() -> None:
    assert next_change(None, utc(2026, 1, 5)) is None


def test_next_change_is_none_when_always_open() -> None:
    always = hours(days=ALL_WEEK, open_=("00:00-00:00",))
    assert next_change(always, utc(2026, 1, 5, 12)) is None


def test_next_change_is_none_when_always_closed() -> None:
    assert next_change(BusinessHours(timezone="Asia/Hong_Kong"), utc(2026, 1, 5, 12)) is None


# --- validate_hours ---------------------------------------------------------------------------


def test_valid_hours_pass_validation() -> None:
    validate_hours(HK)
    validate_hours(hours("Europe/London", open_=("20:00-00:00",)))


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_an_unknown_time_zone_is_invalid(zone: str) -> None:
    with pytest.raises(InvalidArgument, match="time zone"):
        validate_hours(BusinessHours(timezone=zone))


@pytest.mark.parametrize("weekday", [7, -1])
def test_weekdays_run_from_0_to_6(weekday: int) -> None:
    with pytest.raises(InvalidArgument, match="weekday"):
        validate_hours(BusinessHours(weekly={weekday: ranges("09:00-17:00")}))


def test_break_weekdays_are_validated_too() -> None:
    with pytest.raises(InvalidArgument, match="weekday"):
        validate_hours(BusinessHours(breaks={7: ranges("12:00-13:00")}))


@pytest.mark.parametrize("span", ["17:00-09:00", "09:00-09:00"])
def test_a_range_must_end_after_it_starts(span: str) -> None:
    with pytest.raises(InvalidArgument, match="ends before it starts"):
        validate_hours(BusinessHours(weekly={0: ranges(span)}))


def test_a_break_must_end_after_it_starts() -> None:
    with pytest.raises(InvalidArgument, match="ends before it starts"):
        validate_hours(
            BusinessHours(weekly={0: ranges("09:00-18:00")}, breaks={0: ranges("13:00-12:00")})
        )
