"""Timetables: when an entry fires, as aware UTC instants.

A timetable answers one question, "which instants after X are slots?", and everything else
(previews, catch-up, stock Beat's `is_due`) is built on that. Every instant going in must be
aware (naive ones raise ValueError, because guessing a zone is how schedules drift by an hour);
every instant coming out is UTC.

Cron timetables are evaluated on the wall clock of the entry's zone. The rules at DST changes
(documented for users in docs/time-semantics.md):

* gap (clocks jump forward): wall times inside the gap do not exist. An entry with a fixed hour
  fires once at the first instant after the gap for all of its wall times in the gap; an entry
  whose hour field starts with `*` skips them.
* fold (clocks fall back): wall times inside the fold happen twice. A fixed-hour entry fires at
  the first occurrence only; a `*`-hour entry fires at both.

Interval timetables are anchored: slots are `anchor + k*every` for every integer k, so they do
not depend on when Beat started or last dispatched. One-off timetables fire once.

The classes subclass celery's `BaseSchedule` so that stock `celery beat` can run a compiled
`beat_schedule` too; they pickle by value because its shelve store pickles them.
"""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from itertools import islice, takewhile
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import BaseSchedule, schedstate

from scheduling.timing.cron import CronExpression
from scheduling.timing.describe import describe_every

__all__ = [
    "EXHAUSTED_RECHECK",
    "UNIX_EPOCH",
    "CronTimetable",
    "IntervalTimetable",
    "OneOffTimetable",
    "Timetable",
    "as_utc",
]

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: What `is_due` tells stock Beat once a timetable has no slots left: look again in an hour.
#: Beat caps it by `beat_max_loop_interval` anyway; a huge value would only overflow sums.
EXHAUSTED_RECHECK = timedelta(hours=1)

_TICK = timedelta(microseconds=1)
# Offsets are probed this far apart when looking for a DST transition. tzdata never has two
# transitions within a day, so a change that reverts between two probes cannot be missed.
_PROBE = timedelta(days=1)
# Counting walks this close to a transition one slot at a time, and uses arithmetic elsewhere.
_COUNT_MARGIN = timedelta(days=2)

NowFunction = Callable[[], datetime]


def as_utc(moment: datetime, name: str = "instant") -> datetime:
    """`moment` in UTC; a naive datetime is a caller bug, so it raises ValueError."""
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _stock_beat_instant(moment: datetime) -> datetime:
    """Stock Beat hands over naive UTC (old shelve files) or aware datetimes."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class Timetable(BaseSchedule, metaclass=abc.ABCMeta):
    """The slots of one schedule entry, plus the Celery Beat schedule interface."""

    zone: ZoneInfo

    def __init__(self, zone: ZoneInfo, nowfun: NowFunction | None = None) -> None:
        super().__init__(nowfun=nowfun)
        self.zone = zone
        self._nowfun = nowfun  # kept for pickling (celery-types misnames the base attribute)

    @abc.abstractmethod
    def _fires_after(self, after: datetime) -> Iterator[datetime]:
        """Every slot strictly after `after` (aware UTC), increasing, lazily."""

    @abc.abstractmethod
    def _identity(self) -> tuple[object, ...]:
        """The values that make two timetables equal."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The schedule in words, for people (the zone is shown separately)."""

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Every slot strictly after `after`, increasing, lazily (may be endless)."""
        return self._fires_after(as_utc(after, "after"))

    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after `after`; None once the timetable is exhausted."""
        return next(self.iter_after(after), None)

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` slots after `after` (fewer if the timetable runs out)."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        return list(islice(self.iter_after(after), count))

    def slots_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Slots `t` with start < t <= end, increasing, lazily."""
        end = as_utc(end, "end")
        return takewhile(lambda fire: fire <= end, self.iter_after(start))

    def count_between(self, start: datetime, end: datetime) -> int:
        """How many slots lie in (start, end], without keeping them."""
        return sum(1 for _ in self.slots_between(start, end))

    def last_slots(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The newest `limit` slots in (start, end], oldest first.

        Catch-up after long downtime needs the most recent slots, not a walk from the start:
        the window looked at grows backwards from `end` until it holds enough slots.
        """
        start, end = as_utc(start, "start"), as_utc(end, "end")
        if limit <= 0 or end <= start:
            return []
        window = timedelta(minutes=1)
        while True:
            low = start if window >= end - start else end - window
            recent = deque(self.slots_between(low, end), maxlen=limit)
            if len(recent) == limit or low == start:
                return list(recent)
            window *= 4

    # Celery Beat interface -------------------------------------------------------------

    def is_due(self, last_run_at: datetime) -> schedstate:
        """(due?, seconds until Beat should ask again), as `celery.beat` expects.

        Due when a slot falls in (last_run_at, now]; Beat then records now as the last run,
        so a backlog of several slots runs once (stock Beat has no catch-up policy).
        """
        now = _stock_beat_instant(self.now())
        upcoming = self.next_after(_stock_beat_instant(last_run_at))
        if upcoming is None:
            return schedstate(is_due=False, next=EXHAUSTED_RECHECK.total_seconds())
        if upcoming <= now:
            following = self.next_after(now)
            wait = EXHAUSTED_RECHECK if following is None else following - now
            return schedstate(is_due=True, next=wait.total_seconds())
        return schedstate(is_due=False, next=(upcoming - now).total_seconds())

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """Time from now until the first slot after `last_run_at` (negative when overdue)."""
        upcoming = self.next_after(_stock_beat_instant(last_run_at))
        if upcoming is None:
            return EXHAUSTED_RECHECK
        return upcoming - _stock_beat_instant(self.now())

    # Value semantics ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timetable):
            return NotImplemented
        return type(self) is type(other) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._identity()))


class CronTimetable(Timetable):
    """Slots named by a cron expression on the wall clock of `zone`, within [start, end]."""

    def __init__(
        self,
        expression: CronExpression,
        zone: ZoneInfo,
        start: datetime | None = None,
        end: datetime | None = None,
        nowfun: NowFunction | None = None,
    ) -> None:
        super().__init__(zone, nowfun)
        self.expression = expression
        self.start = None if start is None else as_utc(start, "start")
        self.end = None if end is None else as_utc(end, "end")
        _check_bounds(self.start, self.end)

    def _fires_after(self, after: datetime) -> Iterator[datetime]:
        if self.start is not None and after < self.start:
            after = self.start - _TICK
        for fire in _zoned_cron_fires(self.expression, self.zone, after):
            if self.end is not None and fire > self.end:
                return
            yield fire

    def count_between(self, start: datetime, end: datetime) -> int:
        low, high = _clip(as_utc(start, "start"), as_utc(end, "end"), self.start, self.end)
        if high <= low:
            return 0
        return _count_zoned_cron_fires(self.expression, self.zone, low, high)

    def describe(self) -> str:
        return self.expression.describe() + _bounds_phrase(self.zone, self.start, self.end)

    def _identity(self) -> tuple[object, ...]:
        return (self.expression, self.zone.key, self.start, self.end)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.expression, self.zone, self.start, self.end, self._nowfun))

    def __repr__(self) -> str:
        return (
            f"CronTimetable({self.expression.text!r}, zone={self.zone.key!r}"
            f"{_bounds_repr(self.start, self.end)})"
        )


class IntervalTimetable(Timetable):
    """Slots at `anchor + k*every` for every integer k, within [start, end].

    The anchor (the Unix epoch unless given) pins the grid, so "every hour" fires on the hour
    and a restart or a late dispatch never shifts later slots.
    """

    def __init__(
        self,
        every: timedelta,
        zone: ZoneInfo,
        anchor: datetime = UNIX_EPOCH,
        start: datetime | None = None,
        end: datetime | None = None,
        nowfun: NowFunction | None = None,
    ) -> None:
        super().__init__(zone, nowfun)
        if every <= timedelta(0):
            raise ValueError(f"every must be positive, got {every}")
        self.every = every
        self.anchor = as_utc(anchor, "anchor")
        self.start = None if start is None else as_utc(start, "start")
        self.end = None if end is None else as_utc(end, "end")
        _check_bounds(self.start, self.end)
        self._every_micros = every // _TICK

    def _index_after(self, after: datetime) -> int:
        """The smallest k whose slot is strictly after `after`."""
        return (after - self.anchor) // _TICK // self._every_micros + 1

    def _slot(self, index: int) -> datetime:
        return self.anchor + timedelta(microseconds=index * self._every_micros)

    def _fires_after(self, after: datetime) -> Iterator[datetime]:
        if self.start is not None and after < self.start:
            after = self.start - _TICK
        index = self._index_after(after)
        while True:
            try:
                fire = self._slot(index)
            except OverflowError:
                return
            if self.end is not None and fire > self.end:
                return
            yield fire
            index += 1

    def count_between(self, start: datetime, end: datetime) -> int:
        low, high = _clip(as_utc(start, "start"), as_utc(end, "end"), self.start, self.end)
        if high <= low:
            return 0
        return self._index_after(high) - self._index_after(low)

    def last_slots(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        low, high = _clip(as_utc(start, "start"), as_utc(end, "end"), self.start, self.end)
        if limit <= 0 or high <= low:
            return []
        first, last = self._index_after(low), self._index_after(high) - 1
        return [self._slot(index) for index in range(max(first, last - limit + 1), last + 1)]

    def describe(self) -> str:
        phrase = describe_every(self.every)
        if self.anchor != UNIX_EPOCH:
            phrase += f", aligned to {_local_text(self.anchor, self.zone)}"
        return phrase + _bounds_phrase(self.zone, self.start, self.end)

    def _identity(self) -> tuple[object, ...]:
        return (self.every, self.zone.key, self.anchor, self.start, self.end)

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (self.every, self.zone, self.anchor, self.start, self.end, self._nowfun)
        return (type(self), arguments)

    def __repr__(self) -> str:
        anchor = "" if self.anchor == UNIX_EPOCH else f", anchor={self.anchor.isoformat()!r}"
        return (
            f"IntervalTimetable({self.every!r}, zone={self.zone.key!r}{anchor}"
            f"{_bounds_repr(self.start, self.end)})"
        )


class OneOffTimetable(Timetable):
    """A single slot at `at`; exhausted once it has passed."""

    def __init__(self, at: datetime, zone: ZoneInfo, nowfun: NowFunction | None = None) -> None:
        super().__init__(zone, nowfun)
        self.at = as_utc(at, "at")

    def _fires_after(self, after: datetime) -> Iterator[datetime]:
        if self.at > after:
            yield self.at

    def describe(self) -> str:
        return f"once at {_local_text(self.at, self.zone)}"

    def _identity(self) -> tuple[object, ...]:
        return (self.at, self.zone.key)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.at, self.zone, self._nowfun))

    def __repr__(self) -> str:
        return f"OneOffTimetable({self.at.isoformat()!r}, zone={self.zone.key!r})"


# Cron on a zone's wall clock ------------------------------------------------------------


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always answers
        raise ValueError(f"zone {zone.key} has no UTC offset at {instant.isoformat()}")
    return offset


def _wall(instant: datetime, offset: timedelta) -> datetime:
    return (instant + offset).replace(tzinfo=None)


def _instant(wall: datetime, offset: timedelta) -> datetime:
    return (wall - offset).replace(tzinfo=UTC)


def _first_transition(zone: ZoneInfo, low: datetime, high: datetime) -> datetime | None:
    """The first instant in (low, high] whose UTC offset differs from the offset at `low`."""
    base = _offset(zone, low)
    probe_low = low
    while probe_low < high:
        probe_high = high if high - probe_low <= _PROBE else probe_low + _PROBE
        if _offset(zone, probe_high) != base:
            while probe_high - probe_low > _TICK:
                middle = probe_low + (probe_high - probe_low) // 2
                if _offset(zone, middle) == base:
                    probe_low = middle
                else:
                    probe_high = middle
            return probe_high
        probe_low = probe_high
    return None


def _zoned_cron_fires(
    expression: CronExpression, zone: ZoneInfo, after: datetime
) -> Iterator[datetime]:
    """Fire instants strictly after `after`, walking UTC one constant-offset stretch at a time.

    Within a stretch wall time and UTC move together, so the next matching wall time gives
    the next fire directly. At each transition the DST rule for the gap or fold decides what
    happens to the wall times that are missing or repeated.
    """
    fixed_hour = not expression.hour_is_wildcard
    instant, offset = after, _offset(zone, after)
    floor, inclusive = _wall(after, offset), False
    local = after.astimezone(zone)
    if fixed_hour and local.fold:
        # `after` lies in the repeat of a fold: a fixed-hour entry resumes after the fold.
        first_offset = _offset_of_first_occurrence(local)
        fold_start = _first_transition(zone, after - (first_offset - offset), after)
        if fold_start is not None:
            instant = fold_start
            floor, inclusive = _wall(fold_start, first_offset), True
    try:
        while True:
            wall = expression.next_wall_time(floor, inclusive=inclusive)
            if wall is None:
                return
            candidate = _instant(wall, offset)
            transition = _first_transition(zone, instant, candidate)
            if transition is None:
                yield candidate
                instant, floor, inclusive = candidate, wall, False
                continue
            new_offset = _offset(zone, transition)
            if new_offset > offset:  # gap: walls in [transition+offset, transition+new) are missing
                floor, inclusive = _wall(transition, new_offset), True
                if fixed_hour:
                    missing = expression.next_wall_time(_wall(transition, offset), inclusive=True)
                    if missing is not None and missing < floor:
                        yield transition
                        inclusive = False  # the wall time right after the gap is this instant
            else:  # fold: walls in [transition+new_offset, transition+offset) repeat
                floor = _wall(transition, offset if fixed_hour else new_offset)
                inclusive = True
            instant, offset = transition, new_offset
    except OverflowError:
        return


def _offset_of_first_occurrence(local: datetime) -> timedelta:
    offset = local.replace(fold=0).utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always answers
        raise ValueError(f"no UTC offset for {local.isoformat()}")
    return offset


def _count_zoned_cron_fires(
    expression: CronExpression, zone: ZoneInfo, start: datetime, end: datetime
) -> int:
    """Fires in (start, end], by calendar arithmetic on stretches well away from transitions.

    A year of an every-minute entry is half a million slots; counting them one by one would
    stall a beat tick after long downtime, so only the days around transitions are walked.
    """
    total, low = 0, start
    while low < end:
        slow_high = end if end - low <= _COUNT_MARGIN else low + _COUNT_MARGIN
        total += _walk_fires(expression, zone, low, slow_high)
        low = slow_high
        if low >= end or _first_transition(zone, low - _COUNT_MARGIN / 2, low) is not None:
            continue
        transition = _first_transition(zone, low, end)
        fast_high = end if transition is None else transition - _COUNT_MARGIN / 2
        if fast_high > low:
            offset = _offset(zone, low)
            total += _count_walls(expression, _wall(low, offset), _wall(fast_high, offset))
            low = fast_high
    return total


def _walk_fires(expression: CronExpression, zone: ZoneInfo, low: datetime, high: datetime) -> int:
    count = 0
    for fire in _zoned_cron_fires(expression, zone, low):
        if fire > high:
            break
        count += 1
    return count


def _count_walls(expression: CronExpression, low: datetime, high: datetime) -> int:
    """Matching wall minutes in (low, high] (naive); whole days by multiplication."""
    first_midnight = datetime.combine(low.date() + timedelta(days=1), time())
    if high < first_midnight:
        return _walk_walls(expression, low, high, inclusive=False)
    total = _walk_walls(expression, low, first_midnight - _TICK, inclusive=False)
    per_day = len(expression.minutes) * len(expression.hours)
    last_midnight = datetime.combine(high.date(), time())
    day = first_midnight.date()
    while day < last_midnight.date():
        if expression.matches_day(day):
            total += per_day
        day += timedelta(days=1)
    return total + _walk_walls(expression, last_midnight, high, inclusive=True)


def _walk_walls(
    expression: CronExpression, floor: datetime, high: datetime, *, inclusive: bool
) -> int:
    count = 0
    wall = expression.next_wall_time(floor, inclusive=inclusive)
    while wall is not None and wall <= high:
        count += 1
        wall = expression.next_wall_time(wall, inclusive=False)
    return count


# Small shared helpers -------------------------------------------------------------------


def _check_bounds(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")


def _clip(
    low: datetime, high: datetime, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """Narrow the half-open window (low, high] to the timetable's closed [start, end]."""
    if start is not None and low < start - _TICK:
        low = start - _TICK
    if end is not None and high > end:
        high = end
    return low, high


def _local_text(instant: datetime, zone: ZoneInfo) -> str:
    local = instant.astimezone(zone)
    shape = "%Y-%m-%d %H:%M:%S" if local.second or local.microsecond else "%Y-%m-%d %H:%M"
    return local.strftime(shape)


def _bounds_phrase(zone: ZoneInfo, start: datetime | None, end: datetime | None) -> str:
    phrase = ""
    if start is not None:
        phrase += f", from {_local_text(start, zone)}"
    if end is not None:
        phrase += f", until {_local_text(end, zone)}"
    return phrase


def _bounds_repr(start: datetime | None, end: datetime | None) -> str:
    text = ""
    if start is not None:
        text += f", start={start.isoformat()!r}"
    if end is not None:
        text += f", end={end.isoformat()!r}"
    return text
