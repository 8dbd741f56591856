"""Solar timetables against published sunrise and sunset tables, and as timetables.

Published figures (local time, to the minute) are the ones the usual almanac tables give for
these dates (timeanddate.com and the US Naval Observatory agree on them to the minute); the
astral-based timetable must land within two minutes of each.
"""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.timing.solar import SOLAR_EVENTS, SolarTimetable

CITIES = {
    "London": (51.5074, -0.1278, "Europe/London"),
    "New York": (40.7128, -74.0060, "America/New_York"),
    "Sydney": (-33.8688, 151.2093, "Australia/Sydney"),
    "Berlin": (52.5200, 13.4050, "Europe/Berlin"),
    "Tokyo": (35.6762, 139.6503, "Asia/Tokyo"),
    "Reykjavik": (64.1466, -21.9426, "Atlantic/Reykjavik"),
}
TROMSO = (69.6492, 18.9553)


def timetable(city: str, event: str) -> SolarTimetable:
    latitude, longitude, zone = CITIES[city]
    return SolarTimetable(event, latitude, longitude, ZoneInfo(zone))


@pytest.mark.parametrize(
    ("city", "event", "published"),
    [
        ("London", "sunrise", "2026-06-21 04:43"),
        ("London", "sunset", "2026-06-21 21:21"),
        ("London", "sunrise", "2026-12-21 08:04"),
        ("London", "sunset", "2026-12-21 15:53"),
        ("New York", "sunrise", "2026-06-21 05:25"),
        ("New York", "sunset", "2026-06-21 20:31"),
        ("New York", "sunrise", "2026-12-21 07:17"),
        ("New York", "sunset", "2026-12-21 16:32"),
        ("Sydney", "sunrise", "2026-06-21 07:00"),
        ("Sydney", "sunset", "2026-06-21 16:54"),
        ("Berlin", "sunrise", "2026-06-21 04:43"),
        ("Berlin", "sunset", "2026-06-21 21:33"),
        ("Berlin", "sunrise", "2026-12-21 08:15"),
        ("Berlin", "sunset", "2026-12-21 15:54"),
        ("Tokyo", "sunrise", "2026-06-21 04:25"),
        ("Tokyo", "sunset", "2026-06-21 19:00"),
        # Reykjavik's midsummer sunset is after midnight: it still ends the 21st.
        ("Reykjavik", "sunrise", "2026-06-21 02:55"),
        ("Reykjavik", "sunset", "2026-06-22 00:04"),
    ],
)
def test_matches_published_tables(city: str, event: str, published: str) -> None:
    table = timetable(city, event)
    expected = datetime.strptime(published, "%Y-%m-%d %H:%M").replace(tzinfo=table.zone)
    day_before = (expected - timedelta(hours=12)).astimezone(UTC)

    fire = table.next_after(day_before)

    assert fire is not None
    assert abs(fire - expected) <= timedelta(minutes=2), (city, event, fire.astimezone(table.zone))


def test_one_slot_per_day_in_order_at_whole_seconds() -> None:
    fires = timetable("Berlin", "sunset").fire_times(datetime(2026, 3, 1, tzinfo=UTC), 60)

    days = [fire.astimezone(ZoneInfo("Europe/Berlin")).date() for fire in fires]
    assert days == [date(2026, 3, 1) + timedelta(days=offset) for offset in range(60)]
    assert all(fire.tzinfo is UTC and fire.microsecond == 0 for fire in fires)


def test_events_of_one_day_come_in_the_sun_s_order() -> None:
    latitude, longitude, zone = CITIES["Berlin"]
    after = datetime(2026, 4, 10, tzinfo=UTC)
    fires = [
        SolarTimetable(event, latitude, longitude, ZoneInfo(zone)).next_after(after)
        for event in SOLAR_EVENTS
    ]

    assert fires == sorted(fires)
    assert len(set(fires)) == len(SOLAR_EVENTS)


def test_polar_night_has_no_sunrise_and_the_sun_comes_back() -> None:
    """Tromsø: the sun stays down from about 27 November to 15 January."""
    table = SolarTimetable("sunrise", *TROMSO, ZoneInfo("Europe/Oslo"))
    fires = table.fire_times(datetime(2026, 11, 24, tzinfo=UTC), 4)
    local_days = [fire.astimezone(ZoneInfo("Europe/Oslo")).date() for fire in fires]

    assert local_days[:2] == [date(2026, 11, 24), date(2026, 11, 25)]
    assert date(2027, 1, 14) <= local_days[3] <= date(2027, 1, 18)
    assert (
        table.count_between(datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 10, tzinfo=UTC))
        == 0
    )


def test_midnight_sun_has_no_sunset_but_solar_noon_every_day() -> None:
    start, end = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    sunset = SolarTimetable("sunset", *TROMSO, ZoneInfo("Europe/Oslo"))
    noon = SolarTimetable("solar_noon", *TROMSO, ZoneInfo("Europe/Oslo"))

    assert sunset.count_between(start, end) == 0
    assert noon.count_between(start, end) == 30


def test_summer_without_astronomical_dusk_in_berlin() -> None:
    """At 52.5°N the sun does not sink 18° below the horizon around midsummer."""
    latitude, longitude, zone = CITIES["Berlin"]
    dusk = SolarTimetable("dusk_astronomical", latitude, longitude, ZoneInfo(zone))

    assert dusk.event_on(date(2026, 6, 21)) is None
    assert dusk.event_on(date(2026, 9, 1)) is not None


def test_any_instant_between_two_fires_leads_to_the_later() -> None:
    table = timetable("Reykjavik", "sunset")
    first, second = table.fire_times(datetime(2026, 6, 20, tzinfo=UTC), 2)

    for fraction in (0, 0.25, 0.5, 0.999):
        between = first + (second - first) * fraction
        assert table.next_after(between) == second


def test_window_queries_agree_with_walking() -> None:
    table = timetable("Sydney", "dawn_civil")
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    walked = list(table.slots_between(start, end))

    assert len(walked) == 59
    assert table.count_between(start, end) == 59
    assert table.last_slots(start, end, 3) == walked[-3:]


def test_start_and_end_bound_the_slots() -> None:
    latitude, longitude, zone = CITIES["London"]
    start, end = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 4, tzinfo=UTC)
    bounded = SolarTimetable("sunrise", latitude, longitude, ZoneInfo(zone), start=start, end=end)

    fires = bounded.fire_times(datetime(2026, 1, 1, tzinfo=UTC), 10)

    assert len(fires) == 3
    assert all(start <= fire <= end for fire in fires)
    assert "from 2026-05-01 01:00, until 2026-05-04 01:00" in bounded.describe()


def test_value_semantics_and_description() -> None:
    table = timetable("Sydney", "dusk_civil")

    assert pickle.loads(pickle.dumps(table)) == table  # noqa: S301 - our own bytes
    assert hash(table) == hash(timetable("Sydney", "dusk_civil"))
    assert table != timetable("Sydney", "dusk_nautical")
    assert table.describe() == "at civil dusk at 33.87°S 151.2°E"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("moonrise", 1.0, 2.0), "unknown solar event 'moonrise'"),
        (("sunset", 91.0, 2.0), "latitude must be within -90..90"),
        (("sunset", 1.0, 181.0), "longitude must be within -180..180"),
    ],
)
def test_bad_arguments(arguments: tuple[str, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SolarTimetable(*arguments, ZoneInfo("UTC"))
