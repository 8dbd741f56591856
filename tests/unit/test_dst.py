"""DST gaps and folds: the rules of docs/time-semantics.md, zone by zone.

Transitions used (checked against zoneinfo):
  Europe/Berlin 2026      gap 03-29 02:00->03:00 (01:00Z)   fold 10-25 03:00->02:00 (01:00Z)
  America/New_York 2026   gap 03-08 02:00->03:00 (07:00Z)   fold 11-01 02:00->01:00 (06:00Z)
  Australia/Lord_Howe 2025 gap 10-05 02:00->02:30 (10-04 15:30Z)
                          fold 04-06 02:00->01:30 (04-05 15:00Z)   (a 30-minute shift)
  America/Santiago 2024   gap 09-08 00:00->01:00 (04:00Z)   fold 04-07 00:00->04-06 23:00 (03:00Z)
  Asia/Beirut 2024        gap 03-31 00:00->01:00 (03-30 22:00Z)
                          fold 10-27 00:00->10-26 23:00 (10-26 21:00Z)   (both at midnight)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.timing.cron import CronExpression
from scheduling.timing.timetables import CronTimetable

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SANTIAGO = ZoneInfo("America/Santiago")
BEIRUT = ZoneInfo("Asia/Beirut")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fires(text: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    return list(CronTimetable(CronExpression.parse(text), zone).slots_between(start, end))


def local_day_fires(text: str, zone: ZoneInfo, day: date) -> list[datetime]:
    """Fires whose wall-clock date in `zone` is `day`."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(days=1)
    found = fires(text, zone, start.astimezone(UTC), start.astimezone(UTC) + timedelta(days=3))
    return [fire for fire in found if fire.astimezone(zone).date() == day]


def test_zone_data_matches_the_documented_transitions() -> None:
    """Guards the explicit cases below against a tzdata that disagrees."""
    expected = [
        (BERLIN, utc(2026, 3, 29, 1), 1, 2),
        (BERLIN, utc(2026, 10, 25, 1), 2, 1),
        (NEW_YORK, utc(2026, 3, 8, 7), -5, -4),
        (NEW_YORK, utc(2026, 11, 1, 6), -4, -5),
        (SANTIAGO, utc(2024, 9, 8, 4), -4, -3),
        (SANTIAGO, utc(2024, 4, 7, 3), -3, -4),
        (BEIRUT, utc(2024, 3, 30, 22), 2, 3),
        (BEIRUT, utc(2024, 10, 26, 21), 3, 2),
    ]
    for zone, instant, before, after in expected:
        assert (instant - timedelta(seconds=1)).astimezone(zone).utcoffset() == timedelta(
            hours=before
        )
        assert instant.astimezone(zone).utcoffset() == timedelta(hours=after)
    assert utc(2025, 10, 4, 15, 30).astimezone(LORD_HOWE).utcoffset() == timedelta(hours=11)
    assert utc(2025, 10, 4, 15, 29).astimezone(LORD_HOWE).utcoffset() == timedelta(hours=10.5)


class TestBerlinGap:
    def test_fixed_hour_in_gap_fires_once_right_after_it(self) -> None:
        assert local_day_fires("30 2 * * *", BERLIN, date(2026, 3, 29)) == [utc(2026, 3, 29, 1)]

    def test_fixed_hour_every_minute_of_the_gap_collapses_to_one_fire(self) -> None:
        day = local_day_fires("* 2 * * *", BERLIN, date(2026, 3, 29))

        assert day == [utc(2026, 3, 29, 1)]

    def test_fixed_hour_gap_fire_and_a_real_03_00_fire_are_one(self) -> None:
        day = local_day_fires("0 2,3 * * *", BERLIN, date(2026, 3, 29))

        assert day == [utc(2026, 3, 29, 1)]

    def test_wildcard_hour_skips_missing_wall_times(self) -> None:
        day = local_day_fires("30 * * * *", BERLIN, date(2026, 3, 29))

        walls = [fire.astimezone(BERLIN).strftime("%H:%M") for fire in day]
        assert walls[:3] == ["00:30", "01:30", "03:30"]
        assert len(day) == 23

    def test_every_15_minutes_has_no_burst_at_03_00(self) -> None:
        around = fires("*/15 * * * *", BERLIN, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30))

        assert around == [utc(2026, 3, 29, 0, 45) + timedelta(minutes=15 * k) for k in range(4)]
        assert len(local_day_fires("*/15 * * * *", BERLIN, date(2026, 3, 29))) == 23 * 4

    def test_daily_at_03_00_is_unaffected(self) -> None:
        assert local_day_fires("0 3 * * *", BERLIN, date(2026, 3, 29)) == [utc(2026, 3, 29, 1)]


class TestBerlinFold:
    def test_fixed_hour_fires_at_first_occurrence_only(self) -> None:
        day = local_day_fires("30 2 * * *", BERLIN, date(2026, 10, 25))

        assert day == [utc(2026, 10, 25, 0, 30)]  # 02:30 CEST

    def test_fixed_hour_minutes_in_fold_fire_once_each(self) -> None:
        day = local_day_fires("*/20 2 * * *", BERLIN, date(2026, 10, 25))

        assert day == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 20), utc(2026, 10, 25, 0, 40)]

    def test_wildcard_hour_fires_in_both_occurrences(self) -> None:
        day = local_day_fires("30 * * * *", BERLIN, date(2026, 10, 25))

        assert utc(2026, 10, 25, 0, 30) in day  # 02:30 CEST
        assert utc(2026, 10, 25, 1, 30) in day  # 02:30 CET
        assert len(day) == 25

    def test_every_15_minutes_keeps_its_rhythm_in_utc(self) -> None:
        around = fires("*/15 * * * *", BERLIN, utc(2026, 10, 24, 23, 50), utc(2026, 10, 25, 2))

        assert around == [utc(2026, 10, 25, 0) + timedelta(minutes=15 * k) for k in range(9)]
        assert len(local_day_fires("*/15 * * * *", BERLIN, date(2026, 10, 25))) == 25 * 4

    def test_a_yearly_entry_on_the_fold_day_asked_from_months_before(self) -> None:
        """Both ends of the search are in CET, with CEST in between: still the first 02:30."""
        timetable = CronTimetable(CronExpression.parse("30 2 25 10 *"), BERLIN)

        assert timetable.next_after(utc(2025, 11, 1)) == utc(2026, 10, 25, 0, 30)

    def test_restart_inside_the_repeat_does_not_fire_a_fixed_hour_entry_again(self) -> None:
        timetable = CronTimetable(CronExpression.parse("45 2 * * *"), BERLIN)

        assert timetable.next_after(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 45)

    def test_restart_inside_the_repeat_continues_a_wildcard_entry(self) -> None:
        timetable = CronTimetable(CronExpression.parse("45 * * * *"), BERLIN)

        assert timetable.next_after(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 1, 45)


@pytest.mark.parametrize(
    ("text", "per_day"),
    [("0 9 * * *", 1), ("0 * * * *", 24), ("*/15 * * * *", 96), ("30 2 * * *", 1)],
)
def test_daily_hourly_and_quarter_hourly_across_a_berlin_year(text: str, per_day: int) -> None:
    """Every local day of 2026 gets its fires; only the two transition days differ."""
    year = fires(text, BERLIN, utc(2025, 12, 31, 22, 59), utc(2026, 12, 31, 22, 59))
    by_day: dict[date, int] = {}
    for fire in year:
        local_day = fire.astimezone(BERLIN).date()
        by_day[local_day] = by_day.get(local_day, 0) + 1

    assert len(by_day) == 365
    assert year == sorted(set(year))
    wildcard = text.split()[1] == "*"
    expected_gap_day = per_day * 23 // 24 if wildcard else per_day
    expected_fold_day = per_day * 25 // 24 if wildcard else per_day
    assert by_day.pop(date(2026, 3, 29)) == expected_gap_day
    assert by_day.pop(date(2026, 10, 25)) == expected_fold_day
    assert set(by_day.values()) == {per_day}


class TestNewYork:
    def test_gap(self) -> None:
        assert local_day_fires("30 2 * * *", NEW_YORK, date(2026, 3, 8)) == [utc(2026, 3, 8, 7)]
        hourly = local_day_fires("0 * * * *", NEW_YORK, date(2026, 3, 8))
        assert len(hourly) == 23

    def test_fold(self) -> None:
        assert local_day_fires("30 1 * * *", NEW_YORK, date(2026, 11, 1)) == [
            utc(2026, 11, 1, 5, 30)  # 01:30 EDT
        ]
        both = [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)]
        assert fires("30 * * * *", NEW_YORK, utc(2026, 11, 1, 5), utc(2026, 11, 1, 7)) == both


class TestLordHoweHalfHourShift:
    def test_gap_of_30_minutes(self) -> None:
        # 02:00-02:29 do not exist on 2025-10-05; 02:30 +11 is 15:30Z the day before.
        assert local_day_fires("15 2 * * *", LORD_HOWE, date(2025, 10, 5)) == [
            utc(2025, 10, 4, 15, 30)
        ]
        quarter = fires("*/15 * * * *", LORD_HOWE, utc(2025, 10, 4, 15), utc(2025, 10, 4, 16))
        assert [fire.astimezone(LORD_HOWE).strftime("%H:%M") for fire in quarter] == [
            "01:45", "02:30", "02:45", "03:00",
        ]  # fmt: skip

    def test_fold_of_30_minutes(self) -> None:
        # 01:30-01:59 happen twice on 2025-04-06: at 14:30Z (+11) and 15:00Z (+10:30).
        assert local_day_fires("45 1 * * *", LORD_HOWE, date(2025, 4, 6)) == [
            utc(2025, 4, 5, 14, 45)
        ]
        quarter = fires("*/15 * * * *", LORD_HOWE, utc(2025, 4, 5, 14, 20), utc(2025, 4, 5, 15, 35))
        assert quarter == [utc(2025, 4, 5, 14, 30) + timedelta(minutes=15 * k) for k in range(5)]

    def test_hourly_at_minute_zero_skips_the_missing_02_00(self) -> None:
        hourly = fires("0 * * * *", LORD_HOWE, utc(2025, 10, 4, 14), utc(2025, 10, 4, 17))

        assert [fire.astimezone(LORD_HOWE).strftime("%H:%M") for fire in hourly] == [
            "01:00", "03:00", "04:00",
        ]  # fmt: skip


class TestMidnightTransitions:
    def test_santiago_missing_midnight_fires_at_01_00(self) -> None:
        assert local_day_fires("0 0 * * *", SANTIAGO, date(2024, 9, 8)) == [utc(2024, 9, 8, 4)]
        assert fires("0 0 * * sun", SANTIAGO, utc(2024, 9, 7), utc(2024, 9, 9)) == [
            utc(2024, 9, 8, 4)  # Sunday's midnight does not exist: 01:00 on Sunday
        ]

    def test_santiago_repeated_hour_before_midnight(self) -> None:
        assert local_day_fires("30 23 * * *", SANTIAGO, date(2024, 4, 6)) == [
            utc(2024, 4, 7, 2, 30)
        ]
        hourly = fires("0 * * * *", SANTIAGO, utc(2024, 4, 7, 1, 30), utc(2024, 4, 7, 4, 30))
        assert hourly == [utc(2024, 4, 7, 2), utc(2024, 4, 7, 3), utc(2024, 4, 7, 4)]
        assert [fire.astimezone(SANTIAGO).strftime("%d %H:%M") for fire in hourly] == [
            "06 23:00", "06 23:00", "07 00:00",
        ]  # fmt: skip

    def test_beirut_gap_and_fold_at_midnight(self) -> None:
        assert local_day_fires("0 0 * * *", BEIRUT, date(2024, 3, 31)) == [
            utc(2024, 3, 30, 22)  # 01:00 EEST
        ]
        assert local_day_fires("15 0 * * *", BEIRUT, date(2024, 3, 31)) == [utc(2024, 3, 30, 22)]
        assert local_day_fires("15 23 * * *", BEIRUT, date(2024, 10, 26)) == [
            utc(2024, 10, 26, 20, 15)
        ]
        both = fires("15 * * * *", BEIRUT, utc(2024, 10, 26, 20), utc(2024, 10, 26, 21, 30))
        assert both == [utc(2024, 10, 26, 20, 15), utc(2024, 10, 26, 21, 15)]


# An independent reference: walk every UTC minute and apply the written rules directly.

DST_ZONES = [BERLIN, NEW_YORK, LORD_HOWE, SANTIAGO, BEIRUT, ZoneInfo("Pacific/Chatham")]


def transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    found, probe = [], utc(year, 1, 1)
    offset = probe.astimezone(zone).utcoffset()
    while probe.year == year:
        probe += timedelta(minutes=15)
        if probe.astimezone(zone).utcoffset() != offset:
            found.append(probe)
            offset = probe.astimezone(zone).utcoffset()
    return found


TRANSITIONS = [(zone, instant) for zone in DST_ZONES for instant in transitions(zone, 2025)]


def reference_fires(
    expression: CronExpression, zone: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    """Fires in (start, end] by brute force over minutes (all offsets here are whole minutes)."""
    minute = timedelta(minutes=1)
    found = []
    instant = start + minute
    while instant <= end:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        repeat = local.fold == 1
        if expression.matches(wall) and (expression.hour_is_wildcard or not repeat):
            found.append(instant)
        before = (instant - minute).astimezone(zone).utcoffset()
        after = local.utcoffset()
        if not expression.hour_is_wildcard and before is not None and after is not None:
            missing = (instant + before).replace(tzinfo=None)
            gap_end = (instant + after).replace(tzinfo=None)
            while missing < gap_end:
                if expression.matches(missing):
                    if not found or found[-1] != instant:
                        found.append(instant)
                    break
                missing += minute
        instant += minute
    return found


@settings(max_examples=40, deadline=None)
@given(
    minute=st.sampled_from(["*", "*/15", "0", "30", "45", "0,20,40", "10-50/20"]),
    hour=st.sampled_from(["*", "*/2", "0", "1", "2", "3", "23", "1-3", "0,12"]),
    transition=st.sampled_from(TRANSITIONS),
    shift=st.integers(-120, 120),
)
def test_matches_brute_force_reference_around_transitions(
    minute: str, hour: str, transition: tuple[ZoneInfo, datetime], shift: int
) -> None:
    zone, instant = transition
    expression = CronExpression.parse(f"{minute} {hour} * * *")
    start = instant - timedelta(hours=30) + timedelta(minutes=shift)
    end = instant + timedelta(hours=30)

    expected = reference_fires(expression, zone, start, end)
    actual = list(CronTimetable(expression, zone).slots_between(start, end))

    assert actual == expected
