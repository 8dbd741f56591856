"""Parsing and wall-clock matching of cron expressions (no time zones here)."""

from __future__ import annotations

import pickle
from datetime import date, datetime

import pytest
from croniter import croniter

from scheduling.errors import CronError
from scheduling.timing.cron import CronExpression


def parse(text: str) -> CronExpression:
    return CronExpression.parse(text)


def test_parse_expands_each_field() -> None:
    expression = parse("0,30 8-10 1,15 */3 1-5")

    assert expression.minutes == {0, 30}
    assert expression.hours == {8, 9, 10}
    assert expression.days_of_month == {1, 15}
    assert expression.months == {1, 4, 7, 10}
    assert expression.days_of_week == {1, 2, 3, 4, 5}
    assert expression.text == "0,30 8-10 1,15 */3 1-5"


def test_steps_over_ranges_and_open_ranges() -> None:
    assert parse("1-30/5 * * * *").minutes == {1, 6, 11, 16, 21, 26}
    assert parse("5/20 * * * *").minutes == {5, 25, 45}
    assert parse("*/15 * * * *").minutes == {0, 15, 30, 45}
    assert parse("0 */100 * * *").hours == {0}


def test_names_are_case_insensitive_and_mix_with_numbers() -> None:
    expression = parse("0 8 * JAN-mar,Dec Mon-FRI")

    assert expression.months == {1, 2, 3, 12}
    assert expression.days_of_week == {1, 2, 3, 4, 5}
    assert expression == parse("0 8 * 1-3,12 1-5")


@pytest.mark.parametrize(("field", "days"), [("7", {0}), ("5-7", {5, 6, 0}), ("sat-sun", {6, 0})])
def test_seven_is_sunday(field: str, days: set[int]) -> None:
    assert parse(f"0 0 * * {field}").days_of_week == days


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("1/2", {1, 3, 5}),
        ("mon/2", {1, 3, 5}),
        ("fri/2", {5}),
        ("6/1", {6}),
        ("0/3", {0, 3, 6}),
        ("*/2", {0, 2, 4, 6}),
        ("1-7/2", {1, 3, 5, 0}),
    ],
)
def test_day_of_week_steps_run_to_saturday_as_croniter_reads_them(
    field: str, days: set[int]
) -> None:
    assert parse(f"0 0 * * {field}").days_of_week == days
    reference = croniter(f"0 0 * * {field}", datetime(2026, 11, 1))  # a Sunday
    week = {reference.get_next(datetime).isoweekday() % 7 for _ in range(7)}
    assert week == days


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("² * * * *", "minute"),
        ("0 ² * * *", "hour"),
        ("0 0 ٣ * *", "day-of-month"),
        ("0 0 * ¹ *", "month"),
        ("0 0 * * ²", "day-of-week"),
        ("*/² * * * *", "minute"),
        ("0 1-² * * *", "hour"),
        ("0 0 * * mon/²", "day-of-week"),
        ("0 0 1-2-3 * *", "day-of-month"),
        ("0 0 * * 1/", "day-of-week"),
        ("0 0 * * -", "day-of-week"),
        ("0 0 * */ *", "month"),
        ("0 0 * * ½", "day-of-week"),
        ("0x1 * * * *", "minute"),
        ("+1 * * * *", "minute"),
        (" 1_0 * * * *", "minute"),
    ],
)
def test_every_malformed_field_is_a_cron_error_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(CronError, match=rf"^cron .*: {field}\b"):
        parse(text)


@pytest.mark.parametrize(
    ("macro", "equivalent"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_macros(macro: str, equivalent: str) -> None:
    assert parse(macro) == parse(equivalent)
    assert parse(macro).hour_is_wildcard == parse(equivalent).hour_is_wildcard


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 25 * * *", "cron '0 25 * * *': hour 25 is out of range 0-23"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * *", "expected 5 fields"),
        ("0 0 * * * *", "expected 5 fields"),
        ("*/0 * * * *", "minute: step '0' must be a positive whole number"),
        ("*/x * * * *", "minute: step 'x' must be a positive whole number"),
        ("0 0 L-31 * *", "day-of-month 'L-31' must be L (the last day) or L-n"),
        ("0 0 LW * *", "day-of-month 'LW' must be L"),
        ("0 0 L-30 2 *", "day-of-month L-30 never occurs in month 2"),
        ("0 0 * * fri#6", "day-of-week 'fri#6': after # must come 1-5 or L"),
        ("0 0 * * x#1", "day-of-week 'x#1': before # must come one weekday"),
        ("0 0 * * fri#", "after # must come 1-5 or L"),
        ("0 0 L, * *", "day-of-month: empty list item"),
        ("0 L * * *", "hour: 'L' is not a number"),
        ("0 0 * foo *", "month: 'foo' is not a number or a name"),
        ("0 0 * * mon,,fri", "day-of-week: empty list item"),
        ("0 0 31 2 *", "day-of-month 31 never occurs in month 2"),
        ("0 0 30,31 2 *", "day-of-month 30,31 never occurs in month 2"),
        ("@reboot", "unknown macro '@reboot'"),
        ("", "expected 5 fields"),
    ],
)
def test_bad_expressions_name_the_field_and_range(text: str, message: str) -> None:
    with pytest.raises(CronError, match=r"^cron ") as caught:
        parse(text)

    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "field", "values"),
    [
        ("0 0 * * fri-mon", "days_of_week", {5, 6, 0, 1}),
        ("0 0 * * 5-1", "days_of_week", {5, 6, 0, 1}),
        ("0 0 * * 7-2", "days_of_week", {0, 1, 2}),
        ("0 0 * * 5-1/2", "days_of_week", {5, 0}),
        ("0 0 * nov-feb *", "months", {11, 12, 1, 2}),
        ("0 22-2 * * *", "hours", {22, 23, 0, 1, 2}),
        ("0 22-2/2 * * *", "hours", {22, 0, 2}),
        ("50-10/5 * * * *", "minutes", {50, 55, 0, 5, 10}),
        ("0 0 28-3 * *", "days_of_month", {28, 29, 30, 31, 1, 2, 3}),
    ],
)
def test_ranges_wrap_around_their_cycle(text: str, field: str, values: set[int]) -> None:
    """The step counts on across the wrap, as croniter reads `22-2/2`."""
    assert getattr(parse(text), field) == values


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("0 9 L * *", date(2026, 1, 1), [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]),
        ("0 9 L 2 *", date(2027, 3, 1), [date(2028, 2, 29), date(2029, 2, 28)]),
        ("0 9 L-1 * *", date(2026, 1, 1), [date(2026, 1, 30), date(2026, 2, 27)]),
        ("0 9 L-28 2 *", date(2026, 1, 1), [date(2028, 2, 1), date(2032, 2, 1)]),
        ("0 9 1,L * *", date(2026, 1, 2), [date(2026, 1, 31), date(2026, 2, 1)]),
        ("0 9 * * fri#2", date(2026, 1, 1), [date(2026, 1, 9), date(2026, 2, 13)]),
        ("0 9 * * 5#L", date(2026, 1, 1), [date(2026, 1, 30), date(2026, 2, 27)]),
        ("0 9 * * sun#5", date(2026, 1, 1), [date(2026, 3, 29), date(2026, 5, 31)]),
        ("0 9 * * 7#1", date(2026, 1, 1), [date(2026, 1, 4), date(2026, 2, 1)]),
        ("0 9 * * mon#1,fri#L", date(2026, 1, 1), [date(2026, 1, 5), date(2026, 1, 30)]),
        ("0 9 * * 2,5#L", date(2026, 1, 24), [date(2026, 1, 27), date(2026, 1, 30)]),
        # Both day fields restricted: either may match (Vixie); a `*` prefix: both must.
        ("0 9 L * mon#1", date(2026, 1, 1), [date(2026, 1, 5), date(2026, 1, 31)]),
        ("0 9 */2 * fri#L", date(2026, 1, 1), [date(2026, 2, 27), date(2026, 3, 27)]),
    ],
)
def test_last_day_and_nth_weekday(text: str, after: date, expected: list[date]) -> None:
    expression = parse(text)
    wall = datetime.combine(after, datetime.min.time())
    found = []
    for _ in expected:
        following = expression.next_wall_time(wall, inclusive=False)
        assert following is not None
        found.append(following.date())
        wall = following

    assert found == expected


def test_last_day_and_nth_weekday_take_part_in_equality() -> None:
    assert parse("0 9 L * *") == parse("0 9 l * *")
    assert parse("0 9 L * *") != parse("0 9 L-1 * *")
    assert parse("0 9 * * fri#L") == parse("0 9 * * 5#l")
    assert parse("0 9 * * fri#1") != parse("0 9 * * fri#2")
    assert pickle.loads(pickle.dumps(parse("0 9 L-2 * mon#3"))) == parse("0 9 L-2 * mon#3")  # noqa: S301


def test_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="hour 24"):
        parse("0 24 * * *")


def test_impossible_day_is_allowed_when_weekday_may_match_instead() -> None:
    expression = parse("0 0 31 2 mon")

    assert expression.next_wall_time(datetime(2026, 2, 1), inclusive=False) == datetime(2026, 2, 2)


@pytest.mark.parametrize(
    ("text", "wildcard"),
    [("0 * * * *", True), ("0 */2 * * *", True), ("0 8 * * *", False), ("0 0-23 * * *", False)],
)
def test_hour_is_wildcard_follows_the_field_text(text: str, wildcard: bool) -> None:
    assert parse(text).hour_is_wildcard is wildcard


class TestVixieDayRule:
    """Day-of-month OR day-of-week when both are restricted; AND when either starts with *."""

    def test_both_restricted_either_matches(self) -> None:
        expression = parse("0 0 1 * mon")

        assert expression.matches_day(date(2026, 11, 1))  # a Sunday, but the 1st
        assert expression.matches_day(date(2026, 11, 2))  # a Monday
        assert not expression.matches_day(date(2026, 11, 3))

    def test_star_prefixed_day_of_month_means_both_must_match(self) -> None:
        expression = parse("0 0 */2 * mon")

        assert expression.matches_day(date(2026, 11, 9))  # Monday, odd day
        assert not expression.matches_day(date(2026, 11, 2))  # Monday, even day
        assert not expression.matches_day(date(2026, 11, 3))  # odd day, Tuesday

    def test_only_weekday_restricted(self) -> None:
        expression = parse("0 0 * * sat,sun")

        assert expression.matches_day(date(2026, 11, 21))
        assert not expression.matches_day(date(2026, 11, 20))

    def test_month_always_applies(self) -> None:
        expression = parse("0 0 1 jan mon")

        assert not expression.matches_day(date(2026, 2, 2))  # a Monday in February


class TestNextWallTime:
    def test_exclusive_moves_past_a_matching_minute(self) -> None:
        expression = parse("*/15 * * * *")

        assert expression.next_wall_time(datetime(2026, 1, 1, 8, 15), inclusive=False) == (
            datetime(2026, 1, 1, 8, 30)
        )

    def test_inclusive_keeps_a_matching_minute(self) -> None:
        expression = parse("*/15 * * * *")

        assert expression.next_wall_time(datetime(2026, 1, 1, 8, 15), inclusive=True) == (
            datetime(2026, 1, 1, 8, 15)
        )

    def test_seconds_round_up_even_when_inclusive(self) -> None:
        expression = parse("*/15 * * * *")

        assert expression.next_wall_time(datetime(2026, 1, 1, 8, 15, 0, 1), inclusive=True) == (
            datetime(2026, 1, 1, 8, 30)
        )

    def test_rolls_over_hours_days_months_and_years(self) -> None:
        expression = parse("30 23 31 12 *")

        assert expression.next_wall_time(datetime(2026, 12, 31, 23, 30), inclusive=False) == (
            datetime(2027, 12, 31, 23, 30)
        )

    def test_leap_day_waits_for_a_leap_year(self) -> None:
        expression = parse("0 0 29 2 *")

        assert expression.next_wall_time(datetime(2024, 3, 1), inclusive=False) == datetime(
            2028, 2, 29
        )

    def test_weekday(self) -> None:
        expression = parse("0 8 * * mon-fri")

        assert expression.next_wall_time(datetime(2026, 11, 20, 8, 0), inclusive=False) == (
            datetime(2026, 11, 23, 8, 0)  # Friday 08:00 -> Monday 08:00
        )

    def test_none_past_year_9999(self) -> None:
        expression = parse("0 0 1 1 *")

        assert expression.next_wall_time(datetime(9999, 6, 1), inclusive=False) is None

    def test_matches(self) -> None:
        expression = parse("0 8 * * mon-fri")

        assert expression.matches(datetime(2026, 11, 23, 8, 0, 59))
        assert not expression.matches(datetime(2026, 11, 22, 8, 0))


def test_value_semantics() -> None:
    expression = parse("0 8 * * mon-fri")

    restored = pickle.loads(pickle.dumps(expression))  # noqa: S301 - our own bytes
    assert restored == expression
    assert restored.text == "0 8 * * mon-fri"
    assert hash(expression) == hash(parse("0 8 * * 1-5"))
    assert expression != parse("0 9 * * mon-fri")
    assert expression == parse("0 8 */1 * mon-fri")  # a * prefix: both day fields must match
    assert expression != parse("0 8 1-31 * mon-fri")  # no * prefix: either may match
    assert repr(expression) == "CronExpression.parse('0 8 * * mon-fri')"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0 8 * * mon-fri", "at 08:00 on Monday through Friday"),
        ("*/15 * * * *", "every 15 minutes"),
        ("5 * * * *", "at minute 5 of every hour"),
        ("* * * * *", "every minute"),
        ("0 * * * *", "every hour"),
        ("0 */2 * * *", "every 2 hours"),
        ("0 0 * * *", "at 00:00 every day"),
        ("30 6 1 * *", "at 06:30 on day 1 of the month"),
        ("0 0 1 1 *", "at 00:00 on January 1"),
        ("0 12 * * sat,sun", "at 12:00 on Saturday and Sunday"),
        ("0 9 1,15 * mon", "at 09:00 on days 1 and 15 of the month or on Monday"),
        ("0 9 * 6-8 *", "at 09:00 every day in June through August"),
        ("0,30 9 * * *", "at 09:00 and 09:30 every day"),
        (
            "30 4 */2 * sat,sun",
            "at 04:30 on every 2nd day of the month if it falls on Saturday or Sunday",
        ),
        ("0 9 L * *", "at 09:00 on the last day of the month"),
        ("0 9 L-3 * *", "at 09:00 on the day 3 days before the last day of the month"),
        ("0 9 1,L * *", "at 09:00 on day 1 and the last day of the month"),
        ("0 9 * * fri#2", "at 09:00 on the second Friday"),
        ("0 9 * * mon#1,fri#L", "at 09:00 on the first Monday and the last Friday"),
        ("0 9 * * 2,5#L", "at 09:00 on Tuesday and the last Friday"),
        ("0 9 L * fri#1", "at 09:00 on the last day of the month or on the first Friday"),
        ("0 9 * * fri-mon", "at 09:00 on Monday and Friday through Sunday"),
    ],
)
def test_describe(text: str, words: str) -> None:
    assert parse(text).describe() == words
