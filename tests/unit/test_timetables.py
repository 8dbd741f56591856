"""Timetables: UTC in and out, anchored intervals, one-offs, bounds, and stock Beat's interface."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.beat import ScheduleEntry

from scheduling.timing.cron import CronExpression
from scheduling.timing.timetables import (
    EXHAUSTED_RECHECK,
    UNIX_EPOCH,
    CronTimetable,
    IntervalTimetable,
    OneOffTimetable,
    Timetable,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 21, 8, 0, 30, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def frozen_now() -> datetime:
    return NOW


def cron(text: str, **bounds: datetime) -> CronTimetable:
    return CronTimetable(CronExpression.parse(text), BERLIN, nowfun=frozen_now, **bounds)


def every(delta: timedelta, **kwargs: datetime) -> IntervalTimetable:
    return IntervalTimetable(delta, BERLIN, nowfun=frozen_now, **kwargs)


class TestUtcDiscipline:
    @pytest.mark.parametrize(
        "timetable",
        [cron("0 8 * * *"), every(timedelta(hours=1)), OneOffTimetable(NOW, BERLIN)],
        ids=["cron", "interval", "one-off"],
    )
    def test_naive_instants_are_refused(self, timetable: Timetable) -> None:
        naive = datetime(2026, 1, 1)
        with pytest.raises(ValueError, match="timezone-aware"):
            timetable.next_after(naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            list(timetable.slots_between(naive, NOW))

    def test_naive_constructor_arguments_are_refused(self) -> None:
        with pytest.raises(ValueError, match="anchor must be timezone-aware"):
            IntervalTimetable(timedelta(hours=1), BERLIN, anchor=datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="at must be timezone-aware"):
            OneOffTimetable(datetime(2026, 1, 1), BERLIN)

    def test_results_are_utc_whatever_zone_the_question_used(self) -> None:
        tokyo = timezone(timedelta(hours=9))
        fire = cron("0 8 * * *").next_after(datetime(2026, 11, 21, 9, 0, tzinfo=tokyo))

        assert fire == utc(2026, 11, 21, 7)  # 08:00 CET
        assert fire is not None
        assert fire.tzinfo is UTC


class TestInterval:
    def test_hourly_fires_on_the_hour_from_the_epoch(self) -> None:
        assert every(timedelta(hours=1)).fire_times(utc(2026, 11, 21, 8, 17), 3) == [
            utc(2026, 11, 21, 9),
            utc(2026, 11, 21, 10),
            utc(2026, 11, 21, 11),
        ]

    def test_slots_are_strictly_after_the_question(self) -> None:
        assert every(timedelta(minutes=15)).next_after(utc(2026, 1, 1, 8)) == utc(2026, 1, 1, 8, 15)

    def test_anchor_pins_the_grid(self) -> None:
        timetable = every(timedelta(minutes=90), anchor=utc(2026, 1, 1, 0, 10))

        assert timetable.fire_times(utc(2025, 12, 31, 22, 0), 3) == [
            utc(2025, 12, 31, 22, 40),  # the grid reaches back before the anchor (k < 0)
            utc(2026, 1, 1, 0, 10),
            utc(2026, 1, 1, 1, 40),
        ]

    def test_restarts_and_query_times_never_move_the_grid(self) -> None:
        anchor = utc(2026, 3, 1, 0, 0, 7)
        reference = every(timedelta(seconds=37), anchor=anchor).fire_times(utc(2026, 3, 29), 50)
        tick = timedelta(microseconds=1)
        for index in (0, 10, 30):
            for query in (reference[index], reference[index] + tick, reference[index + 1] - tick):
                restarted = every(timedelta(seconds=37), anchor=anchor)
                assert restarted.fire_times(query, 5) == reference[index + 1 : index + 6]

    def test_absolute_time_across_dst(self) -> None:
        hourly = every(timedelta(hours=1))

        assert list(hourly.slots_between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 3))) == [
            utc(2026, 3, 29, hour) for hour in range(4)
        ]

    def test_start_and_end_bound_the_slots(self) -> None:
        timetable = every(timedelta(hours=1), start=utc(2026, 1, 1, 5), end=utc(2026, 1, 1, 7))

        assert timetable.fire_times(utc(2025, 1, 1), 10) == [
            utc(2026, 1, 1, 5),
            utc(2026, 1, 1, 6),
            utc(2026, 1, 1, 7),
        ]
        assert timetable.next_after(utc(2026, 1, 1, 7)) is None

    def test_start_off_grid_keeps_the_anchor_grid(self) -> None:
        timetable = every(timedelta(hours=1), start=utc(2026, 1, 1, 5, 30))

        assert timetable.next_after(utc(2025, 1, 1)) == utc(2026, 1, 1, 6)

    def test_counting_a_year_of_seconds_is_arithmetic(self) -> None:
        timetable = every(timedelta(seconds=1))
        year_ago = utc(2025, 11, 21, 8)

        assert timetable.count_between(year_ago, utc(2026, 11, 21, 8)) == 365 * 86400
        assert timetable.last_slots(year_ago, utc(2026, 11, 21, 8), 2) == [
            utc(2026, 11, 21, 7, 59, 59),
            utc(2026, 11, 21, 8),
        ]

    @pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=-1)])
    def test_every_must_be_positive(self, delta: timedelta) -> None:
        with pytest.raises(ValueError, match="every must be positive"):
            IntervalTimetable(delta, BERLIN)

    def test_end_before_start_is_refused(self) -> None:
        with pytest.raises(ValueError, match="before start"):
            every(timedelta(hours=1), start=utc(2026, 1, 2), end=utc(2026, 1, 1))

    def test_describe(self) -> None:
        assert every(timedelta(minutes=15)).describe() == "every 15 minutes"
        assert every(timedelta(hours=1)).describe() == "every hour"
        assert every(timedelta(minutes=90)).describe() == "every 90 minutes"
        assert every(timedelta(hours=1, seconds=5)).describe() == "every 1 hour 5 seconds"
        assert every(timedelta(seconds=1)).describe() == "every second"
        assert every(timedelta(seconds=30)).describe() == "every 30 seconds"
        assert (
            every(timedelta(hours=1), anchor=utc(2026, 1, 1, 0, 10)).describe()
            == "every hour, aligned to 2026-01-01 01:10"
        )


class TestOneOff:
    def test_fires_once(self) -> None:
        timetable = OneOffTimetable(utc(2026, 12, 24, 17), BERLIN)

        assert timetable.next_after(NOW) == utc(2026, 12, 24, 17)
        assert timetable.fire_times(NOW, 3) == [utc(2026, 12, 24, 17)]
        assert timetable.next_after(utc(2026, 12, 24, 17)) is None
        assert timetable.describe() == "once at 2026-12-24 18:00"


class TestCronBounds:
    def test_start_is_inclusive_end_is_inclusive(self) -> None:
        timetable = cron("0 * * * *", start=utc(2026, 1, 1, 5), end=utc(2026, 1, 1, 7))

        assert timetable.fire_times(utc(2020, 1, 1), 5) == [
            utc(2026, 1, 1, 5),
            utc(2026, 1, 1, 6),
            utc(2026, 1, 1, 7),
        ]
        assert timetable.count_between(utc(2020, 1, 1), utc(2030, 1, 1)) == 3

    def test_describe_mentions_bounds_in_the_zone(self) -> None:
        timetable = cron("0 8 * * mon-fri", end=utc(2026, 12, 31, 23))

        assert timetable.describe() == "at 08:00 on Monday through Friday, until 2027-01-01 00:00"


class TestLaziness:
    def test_slots_between_is_lazy_for_endless_timetables(self) -> None:
        slots = every(timedelta(seconds=1)).slots_between(
            UNIX_EPOCH, datetime.max.replace(tzinfo=UTC)
        )

        assert next(slots) == UNIX_EPOCH + timedelta(seconds=1)

    def test_fire_times_rejects_a_negative_count(self) -> None:
        with pytest.raises(ValueError, match="count"):
            cron("* * * * *").fire_times(NOW, -1)


class TestValueSemantics:
    @pytest.mark.parametrize(
        "timetable",
        [
            CronTimetable(CronExpression.parse("0 8 * * mon-fri"), BERLIN, start=utc(2026, 1, 1)),
            IntervalTimetable(timedelta(minutes=5), BERLIN, anchor=utc(2026, 1, 1, 0, 1)),
            OneOffTimetable(utc(2026, 12, 24, 17), BERLIN),
        ],
        ids=["cron", "interval", "one-off"],
    )
    def test_pickle_round_trip_keeps_value_and_behaviour(self, timetable: Timetable) -> None:
        timetable.app = Celery("pickling", set_as_current=False)  # stock Beat attaches its app
        restored = pickle.loads(pickle.dumps(timetable))  # noqa: S301 - our own bytes

        assert restored == timetable
        assert hash(restored) == hash(timetable)
        assert restored.fire_times(NOW, 3) == timetable.fire_times(NOW, 3)
        assert restored.zone == BERLIN
        assert repr(restored) == repr(timetable)

    def test_equality_is_by_value(self) -> None:
        assert cron("0 8 * * 1-5") == cron("0 8 * * mon-fri")
        assert cron("0 8 * * *") != cron("0 9 * * *")
        assert CronTimetable(CronExpression.parse("0 8 * * *"), BERLIN) != CronTimetable(
            CronExpression.parse("0 8 * * *"), ZoneInfo("UTC")
        )
        assert every(timedelta(hours=1)) != every(timedelta(hours=1), anchor=utc(2026, 1, 1, 0, 5))
        assert every(timedelta(hours=1)) != cron("0 * * * *")
        assert len({cron("0 8 * * *"), cron("0 8 * * *")}) == 1

    def test_repr_shows_the_definition(self) -> None:
        assert repr(cron("0 8 * * *")) == "CronTimetable('0 8 * * *', zone='Europe/Berlin')"
        assert repr(every(timedelta(minutes=5), anchor=utc(2026, 1, 1))) == (
            "IntervalTimetable(datetime.timedelta(seconds=300), zone='Europe/Berlin',"
            " anchor='2026-01-01T00:00:00+00:00')"
        )


class TestStockBeatInterface:
    """NOW is 08:00:30Z; the hourly entry's slot at 08:00Z is due."""

    def test_due_when_a_slot_passed_since_the_last_run(self) -> None:
        state = every(timedelta(hours=1)).is_due(utc(2026, 11, 21, 7, 0, 5))

        assert state.is_due is True
        assert state.next == pytest.approx(3570.0)  # until 09:00:00Z

    def test_naive_last_run_is_read_as_utc(self) -> None:
        hourly = every(timedelta(hours=1))

        assert hourly.is_due(datetime(2026, 11, 21, 7, 59)).is_due is True
        assert hourly.is_due(datetime(2026, 11, 21, 8, 0, 1)).is_due is False

    def test_aware_last_run_in_another_zone(self) -> None:
        last_run = datetime(2026, 11, 21, 9, 0, 1, tzinfo=BERLIN)  # 08:00:01Z

        state = every(timedelta(hours=1)).is_due(last_run)

        assert state.is_due is False
        assert state.next == pytest.approx(3570.0)

    def test_not_due_reports_seconds_until_the_next_slot(self) -> None:
        state = cron("30 9 * * *").is_due(utc(2026, 11, 21, 8, 0))  # 09:30 CET = 08:30Z

        assert state.is_due is False
        assert state.next == pytest.approx(29 * 60 + 30)
        assert cron("30 9 * * *").remaining_estimate(utc(2026, 11, 21, 8)) == timedelta(
            minutes=29, seconds=30
        )

    def test_overdue_remaining_estimate_is_negative(self) -> None:
        remaining = every(timedelta(hours=1)).remaining_estimate(utc(2026, 11, 21, 7, 30))

        assert remaining == timedelta(seconds=-30)

    def test_exhausted_timetable_is_never_due_again(self) -> None:
        done = OneOffTimetable(utc(2026, 11, 21, 7), BERLIN, nowfun=frozen_now)

        assert done.is_due(utc(2026, 11, 21, 7, 30)) == (False, EXHAUSTED_RECHECK.total_seconds())
        assert done.remaining_estimate(utc(2026, 11, 21, 7, 30)) == EXHAUSTED_RECHECK

    def test_one_off_due_then_exhausted(self) -> None:
        once = OneOffTimetable(utc(2026, 11, 21, 8), BERLIN, nowfun=frozen_now)

        assert once.is_due(utc(2026, 11, 21, 7, 59)) == (True, EXHAUSTED_RECHECK.total_seconds())

    def test_runs_inside_a_celery_schedule_entry(self) -> None:
        app = Celery("stock-beat", set_as_current=False)
        app.conf.timezone = "Europe/Berlin"
        entry = ScheduleEntry(
            name="hourly",
            task="scheduling.tasks.heartbeat",
            schedule=every(timedelta(hours=1)),
            last_run_at=utc(2026, 11, 21, 7, 0, 5),
            app=app,
        )

        due, wait = entry.is_due()
        assert due is True
        assert wait == pytest.approx(3570.0)
        following = entry._next_instance(NOW)
        assert following.is_due() == (False, pytest.approx(3570.0))
