"""Property tests for the extended cron dialect: wrap-around ranges, `L`, `L-n`, `#`.

Two references: croniter where its reading agrees with ours (wrap-around ranges without a
step or with a step that divides the part before the wrap, `L` alone, `fri#2` alone, our
`fri#L` as its `L5`), and, for everything else, a day-by-day oracle below written from the
definitions in docs/time-semantics.md with the calendar module, sharing no code with
scheduling.timing.cron.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

from croniter import croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scheduling.errors import CronError
from scheduling.timing.cron import CronExpression
from scheduling.timing.timetables import CronTimetable

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31))


@st.composite
def wrapped_ranges(draw: st.DrawFn, low: int, high: int) -> str:
    """`a-b` with b < a, optionally with a step croniter reads the same way we do."""
    start = draw(st.integers(low + 1, high))
    stop = draw(st.integers(low, start - 1))
    before_wrap = high - start + 1
    steps = [step for step in range(2, 6) if before_wrap % step == 0]
    step = draw(st.sampled_from([1, *steps]))
    return f"{start}-{stop}" if step == 1 else f"{start}-{stop}/{step}"


@st.composite
def croniter_comparable_texts(draw: st.DrawFn) -> str:
    minute = draw(st.one_of(st.just("0"), wrapped_ranges(0, 59)))
    hour = draw(st.one_of(st.just("*"), st.integers(0, 23).map(str), wrapped_ranges(0, 23)))
    month = draw(st.one_of(st.just("*"), wrapped_ranges(1, 12)))
    day_kind = draw(st.sampled_from(["wrap-dow", "last-day", "nth", "last-weekday", "wrap-dom"]))
    if day_kind == "wrap-dow":
        start = draw(st.integers(1, 6))
        stop = draw(st.integers(0, start - 1))
        # A range naming all seven days is `*` to croniter, which changes the day rule.
        days = ("*", f"{WEEKDAYS[start]}-{WEEKDAYS[stop]}") if start - stop > 1 else ("*", "*")
    elif day_kind == "last-day":
        days = ("L", "*")
    elif day_kind == "nth":
        days = ("*", f"{draw(st.sampled_from(WEEKDAYS))}#{draw(st.integers(1, 4))}")
    elif day_kind == "last-weekday":
        days = ("*", f"{draw(st.integers(0, 6))}#L")
    else:
        days = (draw(wrapped_ranges(1, 31)), "*")
    return f"{minute} {hour} {days[0]} {month} {days[1]}"


def croniter_spelling(text: str) -> str:
    """croniter writes our `5#L` (last Friday) as `L5`."""
    fields = text.split()
    if fields[4].endswith("#L"):
        fields[4] = "L" + fields[4].removesuffix("#L")
    return " ".join(fields)


@settings(max_examples=200, deadline=None)
@given(text=croniter_comparable_texts(), after=instants)
def test_agrees_with_croniter_where_it_reads_the_same(text: str, after: datetime) -> None:
    expression = CronExpression.parse(text)
    reference = croniter(croniter_spelling(text), after)
    wall = after
    for _ in range(4):
        following = expression.next_wall_time(wall, inclusive=False)
        assert following == reference.get_next(datetime), text
        wall = following


# The oracle ------------------------------------------------------------------------------


def month_length(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def oracle_dom_item(item: str, day: date) -> bool:
    if item == "L":
        return day.day == month_length(day)
    if item.startswith("L-"):
        return day.day == month_length(day) - int(item[2:])
    return day.day == int(item)


def oracle_dow_item(item: str, day: date) -> bool:
    name, _, nth = item.partition("#")
    weekday = WEEKDAYS.index(name)
    if (day.weekday() + 1) % 7 != weekday:
        return False
    if not nth:
        return True
    same_weekdays = [
        number
        for number in range(1, month_length(day) + 1)
        if date(day.year, day.month, number).weekday() == day.weekday()
    ]
    if nth == "L":
        return same_weekdays[-1] == day.day
    return int(nth) <= len(same_weekdays) and same_weekdays[int(nth) - 1] == day.day


def oracle_matches_day(dom: str, dow: str, months: set[int], day: date) -> bool:
    if day.month not in months:
        return False
    dom_ok = dom == "*" or any(oracle_dom_item(item, day) for item in dom.split(","))
    dow_ok = dow == "*" or any(oracle_dow_item(item, day) for item in dow.split(","))
    if dom == "*" or dow == "*":
        return dom_ok and dow_ok
    return dom_ok or dow_ok


dom_items = st.one_of(
    st.integers(1, 31).map(str),
    st.just("L"),
    st.integers(0, 27).map(lambda offset: f"L-{offset}"),
)
dow_items = st.one_of(
    st.sampled_from(WEEKDAYS),
    st.tuples(st.sampled_from(WEEKDAYS), st.sampled_from(["1", "2", "3", "4", "5", "L"])).map(
        "#".join
    ),
)


@st.composite
def day_fields(draw: st.DrawFn) -> tuple[str, str, set[int]]:
    dom = draw(st.one_of(st.just("*"), st.lists(dom_items, min_size=1, max_size=3).map(",".join)))
    dow = draw(st.one_of(st.just("*"), st.lists(dow_items, min_size=1, max_size=3).map(",".join)))
    months = set(draw(st.lists(st.integers(1, 12), min_size=1, max_size=4)))
    return dom, dow, months


def parse_day_fields(dom: str, dow: str, months: set[int]) -> CronExpression:
    """Parse, or check that a rejected expression indeed never fires and skip the example."""
    month_text = ",".join(MONTHS[month - 1] for month in sorted(months))
    try:
        return CronExpression.parse(f"0 9 {dom} {month_text} {dow}")
    except CronError:
        four_years = (date(2000, 1, 1) + timedelta(days=offset) for offset in range(1461))
        assert not any(oracle_matches_day(dom, dow, months, day) for day in four_years)
        assume(False)
        raise


@settings(max_examples=200, deadline=None)
@given(fields=day_fields(), start=st.dates(date(2000, 1, 1), date(2035, 12, 31)))
def test_day_matching_agrees_with_the_written_definitions(
    fields: tuple[str, str, set[int]], start: date
) -> None:
    dom, dow, months = fields
    expression = parse_day_fields(dom, dow, months)
    for offset in range(0, 400, 3):
        day = start + timedelta(days=offset)
        assert expression.matches_day(day) == oracle_matches_day(dom, dow, months, day), (
            dom,
            dow,
            months,
            day,
        )


@settings(max_examples=60, deadline=None)
@given(
    fields=day_fields(),
    after=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
)
def test_timetable_counts_and_walks_agree(
    fields: tuple[str, str, set[int]], after: datetime
) -> None:
    """Counting whole days by arithmetic must see `L` and `#` days as walking does."""
    dom, dow, months = fields
    timetable = CronTimetable(parse_day_fields(dom, dow, months), UTC)
    end = after + timedelta(days=800)

    walked = list(timetable.slots_between(after, end))
    assert timetable.count_between(after, end) == len(walked)
    for fire in walked:
        assert oracle_matches_day(dom, dow, months, fire.date())
