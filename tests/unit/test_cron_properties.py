"""Property tests: cron timetables over random expressions, zones and instants.

croniter is the reference away from DST transitions; around transitions the rules differ
on purpose (see docs/time-semantics.md), so those slots are filtered out here and covered by
tests/unit/test_dst.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.timing.cron import CronExpression
from scheduling.timing.timetables import CronTimetable

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Beirut",
    "UTC",
    "Asia/Kolkata",
    "Pacific/Chatham",
]


def _item(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    # Ranges are never degenerate (`5-5`): croniter reads those as `*`.
    bounds = st.tuples(value, value).filter(lambda pair: pair[0] != pair[1]).map(sorted)
    return st.one_of(
        value.map(str),
        bounds.map(lambda pair: f"{pair[0]}-{pair[1]}"),
        st.tuples(bounds, st.integers(1, high - low + 1)).map(
            lambda spec: f"{spec[0][0]}-{spec[0][1]}/{spec[1]}"
        ),
    )


def _field(low: int, high: int, *, star_steps: bool = True) -> st.SearchStrategy[str]:
    """A cron field; `star_steps` off avoids `*/n`, where croniter's day rule is not Vixie's."""
    listed = st.lists(_item(low, high), min_size=1, max_size=3).map(",".join)
    choices = [st.just("*"), listed]
    if star_steps:
        choices.append(st.integers(1, high - low + 1).map(lambda step: f"*/{step}"))
    return st.one_of(*choices)


@st.composite
def cron_texts(draw: st.DrawFn) -> str:
    """Random valid expressions; dense enough that five fires stay within a few years."""
    return " ".join(
        [
            draw(_field(0, 59)),
            draw(_field(0, 23)),
            draw(_field(1, 28, star_steps=False)),
            draw(_field(1, 12)),
            draw(_field(0, 6, star_steps=False)),
        ]
    )


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(ZONES).map(ZoneInfo)


def near_transition(zone: ZoneInfo, low: datetime, high: datetime) -> bool:
    """Independent check: does the UTC offset change anywhere in [low - 1 day, high + 1 day]?"""
    probe, stop = low - timedelta(days=1), high + timedelta(days=1)
    offset = probe.astimezone(zone).utcoffset()
    while probe < stop:
        probe = min(probe + timedelta(hours=6), stop)
        if probe.astimezone(zone).utcoffset() != offset:
            return True
    return False


def croniter_comparable(expression: CronExpression) -> bool:
    """croniter turns a list naming every weekday into `*`, which changes the day rule."""
    both_restricted = not (expression.dom_field_is_star or expression.dow_field_is_star)
    return not (both_restricted and len(expression.days_of_week) == 7)


def croniter_next(text: str, zone: ZoneInfo, after: datetime) -> datetime:
    following: datetime = croniter(text, after.astimezone(zone)).get_next(datetime)
    return following.astimezone(UTC)


@settings(max_examples=150, deadline=None)
@given(text=cron_texts(), zone=zones, after=instants)
def test_fires_increase_match_and_agree_with_croniter(
    text: str, zone: ZoneInfo, after: datetime
) -> None:
    timetable = CronTimetable(CronExpression.parse(text), zone)
    fires = timetable.fire_times(after, 5)
    comparable = croniter_comparable(timetable.expression)

    assert len(fires) == 5
    previous = after
    for fire in fires:
        assert fire > previous
        assert fire.tzinfo is UTC
        if not near_transition(zone, previous, fire):
            wall = fire.astimezone(zone).replace(tzinfo=None)
            assert timetable.expression.matches(wall), (text, zone, fire)
            if comparable:
                assert croniter_next(text, zone, previous) == fire, (text, zone, previous)
        previous = fire


@settings(max_examples=100, deadline=None)
@given(
    text=cron_texts(),
    zone=zones,
    after=instants,
    fraction=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_any_instant_between_two_fires_leads_to_the_later(
    text: str, zone: ZoneInfo, after: datetime, fraction: float
) -> None:
    """A restarted beat asking from any instant gets the same next slot (folds included)."""
    timetable = CronTimetable(CronExpression.parse(text), zone)
    first, second = timetable.fire_times(after, 2)
    span = (second - first) // timedelta(microseconds=1)
    between = first + timedelta(microseconds=min(int(span * fraction), span - 1))

    fresh = CronTimetable(CronExpression.parse(text), zone)
    assert fresh.next_after(between) == second
    assert fresh.next_after(first) == second


@settings(max_examples=60, deadline=None)
@given(
    text=cron_texts(),
    zone=zones,
    start=instants,
    length=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=12)),
    limit=st.integers(1, 5),
)
def test_window_queries_agree_with_walking(
    text: str, zone: ZoneInfo, start: datetime, length: timedelta, limit: int
) -> None:
    timetable = CronTimetable(CronExpression.parse(text), zone)
    end = start + length
    walked = []
    for fire in timetable.iter_after(start):
        if fire > end:
            break
        walked.append(fire)

    assert list(timetable.slots_between(start, end)) == walked
    assert timetable.count_between(start, end) == len(walked)
    assert timetable.last_slots(start, end, limit) == walked[-limit:]


@settings(max_examples=25, deadline=None)
@given(
    minute=st.lists(st.integers(0, 59), min_size=1, max_size=2).map(
        lambda ms: ",".join(map(str, ms))
    ),
    hour=_field(0, 23),
    zone=zones,
    start=instants,
    days=st.integers(10, 200),
)
def test_fast_count_over_long_windows_matches_walking(
    minute: str, hour: str, zone: ZoneInfo, start: datetime, days: int
) -> None:
    """Counting skips whole days by arithmetic; it must agree with walking, DST included."""
    timetable = CronTimetable(CronExpression.parse(f"{minute} {hour} * * *"), zone)
    end = start + timedelta(days=days)

    assert timetable.count_between(start, end) == sum(
        1 for _ in timetable.slots_between(start, end)
    )
