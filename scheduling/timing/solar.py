"""Solar timetables: one slot per day at sunrise, sunset, a dawn, a dusk or solar noon.

Celery Beat's `solar` schedule, computed with astral (NOAA's solar equations) instead of
ephem. Days are counted in local mean solar time at the entry's longitude (UTC shifted by
longitude / 15 hours), so each solar day, noon in its middle, holds at most one instance of
each event wherever on Earth the entry is: a sunset in Reykjavik after midnight UTC still
belongs to the day whose evening it ends.

A day on which the event does not happen (the sun never sets during a polar day, never rises
during a polar night, or never sinks far enough for an astronomical dusk in a high-latitude
summer) has no slot. Instants are cut to whole seconds so that a slot's id does not hang on
the last digits of a floating-point sum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo

from astral import Depression, Observer
from astral import sun as astral_sun

from scheduling.timing.timetables import NowFunction, Timetable, as_utc

__all__ = ["SOLAR_EVENTS", "SolarEvent", "SolarTimetable"]

SolarEvent = Literal[
    "dawn_astronomical",
    "dawn_nautical",
    "dawn_civil",
    "sunrise",
    "solar_noon",
    "sunset",
    "dusk_civil",
    "dusk_nautical",
    "dusk_astronomical",
]
SOLAR_EVENTS: Final[tuple[str, ...]] = get_args(SolarEvent)

_EventFunction = Callable[[Observer, date, timezone], datetime]

_DEPRESSIONS = {
    "civil": Depression.CIVIL,
    "nautical": Depression.NAUTICAL,
    "astronomical": Depression.ASTRONOMICAL,
}


def _dawn(depression: Depression) -> _EventFunction:
    return lambda observer, day, zone: astral_sun.dawn(observer, day, depression, zone)


def _dusk(depression: Depression) -> _EventFunction:
    return lambda observer, day, zone: astral_sun.dusk(observer, day, depression, zone)


_EVENTS: dict[str, _EventFunction] = {
    "sunrise": astral_sun.sunrise,
    "sunset": astral_sun.sunset,
    "solar_noon": astral_sun.noon,
    **{f"dawn_{name}": _dawn(depression) for name, depression in _DEPRESSIONS.items()},
    **{f"dusk_{name}": _dusk(depression) for name, depression in _DEPRESSIONS.items()},
}

_EVENT_WORDS = {
    "sunrise": "sunrise",
    "sunset": "sunset",
    "solar_noon": "solar noon",
    **{f"dawn_{name}": f"{name} dawn" for name in _DEPRESSIONS},
    **{f"dusk_{name}": f"{name} dusk" for name in _DEPRESSIONS},
}

#: Past this many days in a row without the event, the timetable is taken to be exhausted.
#: Every event happens at least once a year below the poles, so this only ends a search at
#: the pole itself or past year 9999.
_DAYS_WITHOUT_EVENT_LIMIT = 400
_TICK = timedelta(microseconds=1)
_ONE_DAY = timedelta(days=1)


class SolarTimetable(Timetable):
    """The daily `event` seen from (`latitude`, `longitude`), within [start, end].

    `zone` is only for display, like every timetable's: the sun does not read clocks.
    """

    def __init__(
        self,
        event: str,
        latitude: float,
        longitude: float,
        zone: ZoneInfo,
        start: datetime | None = None,
        end: datetime | None = None,
        nowfun: NowFunction | None = None,
    ) -> None:
        super().__init__(zone, nowfun)
        if event not in _EVENTS:
            raise ValueError(f"unknown solar event {event!r}; known: {', '.join(SOLAR_EVENTS)}")
        if not -90 <= latitude <= 90:
            raise ValueError(f"latitude must be within -90..90, got {latitude}")
        if not -180 <= longitude <= 180:
            raise ValueError(f"longitude must be within -180..180, got {longitude}")
        self.event = event
        self.latitude = latitude
        self.longitude = longitude
        self.start = None if start is None else as_utc(start, "start")
        self.end = None if end is None else as_utc(end, "end")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end.isoformat()} is before start {self.start.isoformat()}")
        self._observer = Observer(latitude=latitude, longitude=longitude)
        self._solar_clock = timezone(timedelta(minutes=round(longitude * 4)))
        self._compute = _EVENTS[event]

    def event_on(self, day: date) -> datetime | None:
        """The event on local mean solar `day`, in UTC; None when it does not happen then."""
        try:
            moment = self._compute(self._observer, day, self._solar_clock)
        except ValueError:  # astral: the sun never reaches that altitude on this day
            return None
        return moment.astimezone(UTC).replace(microsecond=0)

    def _fires_after(self, after: datetime) -> Iterator[datetime]:
        if self.start is not None and after < self.start:
            after = self.start - _TICK
        try:
            day = after.astimezone(self._solar_clock).date() - _ONE_DAY
        except OverflowError:
            return
        latest, days_without = after, 0
        while days_without < _DAYS_WITHOUT_EVENT_LIMIT:
            try:
                fire = self.event_on(day)
                day += _ONE_DAY
            except OverflowError:
                return
            if fire is None:
                days_without += 1
                continue
            days_without = 0
            if fire <= latest:
                continue
            if self.end is not None and fire > self.end:
                return
            yield fire
            latest = fire

    def describe(self) -> str:
        phrase = f"at {_EVENT_WORDS[self.event]} at {_coordinates(self.latitude, self.longitude)}"
        if self.start is not None:
            phrase += f", from {_wall_text(self.start, self.zone)}"
        if self.end is not None:
            phrase += f", until {_wall_text(self.end, self.zone)}"
        return phrase

    def _identity(self) -> tuple[object, ...]:
        return (self.event, self.latitude, self.longitude, self.zone.key, self.start, self.end)

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (
            self.event,
            self.latitude,
            self.longitude,
            self.zone,
            self.start,
            self.end,
            self._nowfun,
        )
        return (type(self), arguments)

    def __repr__(self) -> str:
        return (
            f"SolarTimetable({self.event!r}, {self.latitude!r}, {self.longitude!r},"
            f" zone={self.zone.key!r})"
        )


def _coordinates(latitude: float, longitude: float) -> str:
    north_south = "N" if latitude >= 0 else "S"
    east_west = "E" if longitude >= 0 else "W"
    return f"{abs(latitude):.4g}°{north_south} {abs(longitude):.4g}°{east_west}"


def _wall_text(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")
