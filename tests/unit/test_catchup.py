"""Catch-up plans: policies, misfire grace, caps, brand-new entries and huge gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.timing.catchup import CatchupPlan, CatchupPolicy, plan_catchup
from scheduling.timing.cron import CronExpression
from scheduling.timing.timetables import CronTimetable, IntervalTimetable

HOURLY = IntervalTimetable(timedelta(hours=1), ZoneInfo("UTC"))


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 21, hour, minute, second, tzinfo=UTC)


def hours(*values: int) -> list[datetime]:
    return [at(value) for value in values]


def plan(
    last_slot: datetime | None,
    now: datetime,
    policy: CatchupPolicy,
    misfire_grace: timedelta | None = None,
    max_catchup: int = 10,
) -> CatchupPlan:
    return plan_catchup(HOURLY, last_slot, now, policy, misfire_grace, max_catchup)


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
def test_an_on_time_tick_dispatches_the_current_slot(policy: CatchupPolicy) -> None:
    result = plan(at(7), at(8, 0, 1), policy)

    assert result == CatchupPlan(dispatch=hours(8), missed=[], next_slot=at(9))


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
def test_nothing_due_between_slots(policy: CatchupPolicy) -> None:
    result = plan(at(8), at(8, 30), policy)

    assert result == CatchupPlan(dispatch=[], missed=[], next_slot=at(9))


class TestAfterDowntime:
    """Beat was down from 02:30 to just after 08:00: slots 03:00 to 08:00 are due."""

    def test_skip_runs_only_the_slot_that_is_on_time(self) -> None:
        result = plan(at(2), at(8, 0, 20), "skip")

        assert result.dispatch == hours(8)
        assert result.missed == hours(3, 4, 5, 6, 7)
        assert result.missed_count == 5
        assert result.missed_since == at(3)

    def test_skip_runs_nothing_when_even_the_newest_slot_is_late(self) -> None:
        result = plan(at(2), at(8, 5), "skip")

        assert result.dispatch == []
        assert result.missed == hours(3, 4, 5, 6, 7, 8)
        assert result.missed_count == 6

    def test_latest_runs_the_newest_even_when_late(self) -> None:
        result = plan(at(2), at(8, 30), "latest")

        assert result.dispatch == hours(8)
        assert result.missed == hours(3, 4, 5, 6, 7)

    def test_all_runs_each(self) -> None:
        result = plan(at(2), at(8, 30), "all")

        assert result.dispatch == hours(3, 4, 5, 6, 7, 8)
        assert result.missed == []
        assert result.missed_count == 0
        assert result.missed_since is None

    def test_all_is_capped_to_the_newest_and_the_rest_are_missed(self) -> None:
        result = plan(at(2), at(8, 30), "all", max_catchup=2)

        assert result.dispatch == hours(7, 8)
        assert result.missed == hours(5, 6)  # the missed list is capped too ...
        assert result.missed_count == 4  # ... but the count is not
        assert result.missed_since == at(3)
        assert result.handled_through == at(8)

    def test_slots_older_than_the_grace_are_missed_whatever_the_policy(self) -> None:
        result = plan(at(2), at(8, 0, 20), "all", misfire_grace=timedelta(hours=2, minutes=30))

        assert result.dispatch == hours(6, 7, 8)
        assert result.missed == hours(3, 4, 5)

    def test_latest_beyond_grace_dispatches_nothing(self) -> None:
        result = plan(at(2), at(8, 30), "latest", misfire_grace=timedelta(minutes=10))

        assert result.dispatch == []
        assert result.missed_count == 6
        assert result.handled_through == at(8)

    def test_a_slot_exactly_at_the_grace_limit_still_runs(self) -> None:
        result = plan(at(7), at(8, 10), "latest", misfire_grace=timedelta(minutes=10))

        assert result.dispatch == hours(8)


class TestBrandNewEntry:
    """No last slot: no history is replayed, and nothing is recorded as missed."""

    @pytest.mark.parametrize("policy", ["skip", "latest", "all"])
    def test_runs_the_slot_due_right_now(self, policy: CatchupPolicy) -> None:
        result = plan(None, at(8, 0, 20), policy)

        assert result == CatchupPlan(dispatch=hours(8), missed=[], next_slot=at(9))

    @pytest.mark.parametrize("policy", ["skip", "latest", "all"])
    def test_does_not_replay_an_older_slot(self, policy: CatchupPolicy) -> None:
        result = plan(None, at(8, 30), policy)

        assert result == CatchupPlan(dispatch=[], missed=[], next_slot=at(9))

    def test_respects_a_grace_shorter_than_a_tick(self) -> None:
        result = plan(None, at(8, 0, 20), "all", misfire_grace=timedelta(seconds=10))

        assert result.dispatch == []

    def test_an_epoch_anchored_second_timer_does_not_replay_history(self) -> None:
        every_second = IntervalTimetable(timedelta(seconds=1), ZoneInfo("UTC"))

        result = plan_catchup(every_second, None, at(8, 0, 20), "all", None, 100)

        assert result.dispatch == [at(8, 0, 20)]
        assert result.missed_count == 0


@pytest.mark.timeout(3)  # walking every slot instead of counting takes far longer
class TestHugeGaps:
    """A year of downtime must not materialise every missed slot."""

    def test_a_year_of_one_second_slots(self) -> None:
        every_second = IntervalTimetable(timedelta(seconds=1), ZoneInfo("UTC"))
        now = at(8)

        result = plan_catchup(every_second, now - timedelta(days=365), now, "all", None, 100)

        assert len(result.dispatch) == 100
        assert result.dispatch[-1] == now
        assert result.missed_count == 365 * 86400 - 100
        assert len(result.missed) == 100
        assert result.missed[-1] == result.dispatch[0] - timedelta(seconds=1)
        assert result.missed_since == now - timedelta(days=365) + timedelta(seconds=1)

    def test_a_year_of_minute_cron_slots_across_dst(self) -> None:
        every_minute = CronTimetable(CronExpression.parse("* * * * *"), ZoneInfo("Europe/Berlin"))
        now = at(8)

        result = plan_catchup(every_minute, now - timedelta(days=365), now, "latest", None, 50)

        assert result.dispatch == [now]
        assert result.missed_count == 365 * 1440 - 1
        assert result.missed == [now - timedelta(minutes=k) for k in range(50, 0, -1)]

    def test_a_year_of_daily_slots_with_grace(self) -> None:
        daily = CronTimetable(CronExpression.parse("0 9 * * *"), ZoneInfo("Europe/Berlin"))
        now = at(8, 30)  # 09:30 CET

        result = plan_catchup(daily, now - timedelta(days=365), now, "skip", timedelta(hours=1), 5)

        assert result.dispatch == []  # 30 minutes late is beyond on-time for skip
        assert result.missed_count == 365
        assert result.missed[-1] == at(8)


class TestArguments:
    def test_naive_now_is_refused(self) -> None:
        with pytest.raises(ValueError, match="now must be timezone-aware"):
            plan(at(7), datetime(2026, 11, 21, 8), "all")

    def test_unknown_policy_is_refused(self) -> None:
        with pytest.raises(ValueError, match="catchup policy"):
            plan(at(7), at(8), "some")  # type: ignore[arg-type]

    def test_cap_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="max_catchup"):
            plan(at(7), at(8), "all", max_catchup=0)

    def test_negative_grace_is_refused(self) -> None:
        with pytest.raises(ValueError, match="misfire_grace"):
            plan(at(7), at(8), "all", misfire_grace=timedelta(seconds=-1))

    def test_last_slot_in_the_future_plans_nothing(self) -> None:
        assert plan(at(9), at(8, 30), "all") == CatchupPlan(dispatch=[], missed=[], next_slot=at(9))

    def test_on_time_tolerance_is_adjustable(self) -> None:
        strict = plan_catchup(HOURLY, at(7), at(8, 0, 20), "skip", None, 10, on_time=timedelta(0))

        assert strict.dispatch == []
        assert strict.missed == hours(8)
