"""Cron expressions: parsing, and matching on a naive wall clock.

This module knows nothing about time zones. It answers "which wall-clock minutes does this
expression name?"; `scheduling.timing.timetables` maps those wall times onto UTC instants and
applies
the DST rules. Keeping the two apart lets each be tested on its own terms.

Dialect: five fields (minute hour day-of-month month day-of-week), `*`, lists, ranges, steps
(`*/15`, `1-30/5`, `5/10` = `5-max/10`, where day-of-week's max is Saturday: `1/2` = Mon, Wed,
Fri, as croniter, robfig/cron and Quartz read it), month and weekday names (case-insensitive),
7 as Sunday, and the macros `@hourly @daily @midnight @weekly @monthly @yearly @annually`.
Ranges may wrap around the end of their cycle (`fri-mon`, `nov-feb`, `22-2`), a step counting
on across the wrap. Day-of-month also takes `L` (the last day) and `L-n` (n days before it);
day-of-week takes `fri#2` (the second Friday of the month) and `fri#L` (the last one).
Day-of-month and day-of-week combine as Vixie cron does: if either field starts with `*` a day
must match both; otherwise (both restricted) it may match either.
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property

from scheduling.errors import CronError
from scheduling.timing.describe import describe_cron_fields

__all__ = ["CronExpression"]

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_WEEKDAY_NAMES = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}

# Longest month lengths (February in a leap year), to reject days that never occur.
_MAX_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_ONE_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _FieldSpec("minute", 0, 59, {}),
    _FieldSpec("hour", 0, 23, {}),
    _FieldSpec("day-of-month", 1, 31, {}),
    _FieldSpec("month", 1, 12, _MONTH_NAMES),
    # 7 is accepted as Sunday and folded onto 0 after parsing.
    _FieldSpec("day-of-week", 0, 7, _WEEKDAY_NAMES),
)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; immutable, hashable and picklable.

    Two expressions that name the same minutes compare equal even if spelled differently
    (`1-5` and `mon-fri`); `text` keeps the original spelling for display.
    """

    text: str = field(compare=False)
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    hour_field_is_star: bool = False
    dom_field_is_star: bool = True
    dow_field_is_star: bool = True
    #: `L` is 0, `L-3` is 3: days counted back from the last day of the month.
    last_day_offsets: frozenset[int] = frozenset()
    #: (weekday 0 = Sunday, n): `fri#2` is (5, 2); `fri#L` is (5, LAST_WEEK).
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse `text`, raising CronError that names the field and its allowed range."""
        source = text.strip()
        expanded = _MACROS.get(source.lower(), source)
        if expanded.startswith("@"):
            known = " ".join(sorted(_MACROS))
            raise CronError(f"cron {text!r}: unknown macro {source!r} (known: {known})")
        parts = expanded.split()
        if len(parts) != len(_FIELDS):
            raise CronError(
                f"cron {text!r}: expected 5 fields (minute hour day-of-month month day-of-week),"
                f" got {len(parts)}"
            )
        plain_doms, last_day_offsets = _split_last_days(text, parts[2])
        plain_dows, nth_weekdays = _split_nth_weekdays(text, parts[4])
        plain_parts = [parts[0], parts[1], plain_doms, parts[3], plain_dows]
        minutes, hours, doms, months, dows = (
            frozenset[int]() if part is None else _parse_field(text, part, spec)
            for part, spec in zip(plain_parts, _FIELDS, strict=True)
        )
        dows = frozenset(day % 7 for day in dows)
        expression = cls(
            text=source,
            minutes=minutes,
            hours=hours,
            days_of_month=doms,
            months=months,
            days_of_week=dows,
            hour_field_is_star=parts[1].startswith("*"),
            dom_field_is_star=parts[2].startswith("*"),
            dow_field_is_star=parts[4].startswith("*"),
            last_day_offsets=last_day_offsets,
            nth_weekdays=nth_weekdays,
        )
        expression._reject_impossible_dates()
        return expression

    @property
    def hour_is_wildcard(self) -> bool:
        """True when the hour field starts with `*` (cron's test for DST handling).

        Such entries follow the wall clock through DST changes (skip a gap, repeat a fold);
        fixed-hour entries fire exactly once per named wall time.
        """
        return self.hour_field_is_star

    def describe(self) -> str:
        """The expression in words, e.g. "at 08:00 on Monday through Friday"."""
        return describe_cron_fields(
            minutes=sorted(self.minutes),
            hours=sorted(self.hours),
            days_of_month=sorted(self.days_of_month),
            months=sorted(self.months),
            days_of_week=sorted(self.days_of_week),
            dom_restricted=not self.dom_field_is_star,
            dow_restricted=not self.dow_field_is_star,
            last_day_offsets=sorted(self.last_day_offsets),
            nth_weekdays=sorted(self.nth_weekdays),
        )

    def matches_day(self, day: date) -> bool:
        """Does `day` satisfy the month, day-of-month and day-of-week fields (Vixie rule)?"""
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.days_of_month or _is_last_day(day, self.last_day_offsets)
        dow_ok = day.isoweekday() % 7 in self.days_of_week or _is_nth_weekday(
            day, self.nth_weekdays
        )
        if self.dom_field_is_star or self.dow_field_is_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def matches(self, wall: datetime) -> bool:
        """Does the wall-clock minute `wall` (naive; seconds ignored) fire?"""
        return wall.minute in self.minutes and wall.hour in self.hours and self.matches_day(wall)

    def next_wall_time(self, floor: datetime, *, inclusive: bool) -> datetime | None:
        """First matching naive wall minute after `floor` (or at it, when `inclusive`).

        Wall-clock arithmetic only: every minute of every day exists here. Returns None past
        year 9999.
        """
        floor = floor.replace(tzinfo=None, fold=0)
        candidate: datetime | None = floor.replace(second=0, microsecond=0)
        if not inclusive or candidate != floor:
            candidate = _add(floor.replace(second=0, microsecond=0), _ONE_MINUTE)
        minutes, hours, months = self._sorted_minutes, self._sorted_hours, self._sorted_months
        while candidate is not None:
            if candidate.month not in self.months:
                later = _first_greater(months, candidate.month)
                if later is None:
                    candidate = _at(candidate.year + 1, months[0], 1)
                else:
                    candidate = _at(candidate.year, later, 1)
            elif not self.matches_day(candidate):
                candidate = _start_of_next_day(candidate)
            elif candidate.hour not in self.hours:
                later = _first_greater(hours, candidate.hour)
                if later is None:
                    candidate = _start_of_next_day(candidate)
                else:
                    candidate = candidate.replace(hour=later, minute=0)
            elif candidate.minute not in self.minutes:
                later = _first_greater(minutes, candidate.minute)
                if later is None:
                    candidate = _add(candidate.replace(minute=0), timedelta(hours=1))
                else:
                    candidate = candidate.replace(minute=later)
            else:
                return candidate
        return None

    @cached_property
    def _sorted_minutes(self) -> tuple[int, ...]:
        return tuple(sorted(self.minutes))

    @cached_property
    def _sorted_hours(self) -> tuple[int, ...]:
        return tuple(sorted(self.hours))

    @cached_property
    def _sorted_months(self) -> tuple[int, ...]:
        return tuple(sorted(self.months))

    def _reject_impossible_dates(self) -> None:
        """`0 0 31 2 *` would make every search run to year 9999; refuse it up front."""
        if not self.dow_field_is_star and not self.dom_field_is_star:
            return  # either field may match, and some weekday occurs in every month
        if any(
            day <= _MAX_DAYS_IN_MONTH[month - 1]
            for month in self.months
            for day in self.days_of_month
        ) or any(
            offset < _MAX_DAYS_IN_MONTH[month - 1]
            for month in self.months
            for offset in self.last_day_offsets
        ):
            return
        named = [str(day) for day in sorted(self.days_of_month)] + [
            "L" if offset == 0 else f"L-{offset}" for offset in sorted(self.last_day_offsets)
        ]
        raise CronError(
            f"cron {self.text!r}: day-of-month {','.join(named)} never occurs"
            f" in month {_compact(self.months)}"
        )

    def __repr__(self) -> str:
        return f"CronExpression.parse({self.text!r})"


def _parse_field(text: str, part: str, spec: _FieldSpec) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values.update(_parse_item(text, item, spec))
    return frozenset(values)


def _parse_item(text: str, item: str, spec: _FieldSpec) -> Sequence[int]:
    where = f"cron {text!r}: {spec.name}"
    if not item:
        raise CronError(f"{where}: empty list item in {text.split()!r}")
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _is_number(step_text) or int(step_text) == 0:
            raise CronError(f"{where}: step {step_text!r} must be a positive whole number")
        step = int(step_text)
    if body == "*":
        return range(spec.low, spec.high + 1 if spec.name != "day-of-week" else 7, step)
    low_text, dash, high_text = body.partition("-")
    low = _parse_value(where, low_text, spec)
    if dash:
        high = _parse_value(where, high_text, spec)
        if spec.name == "day-of-week" and high == 0 and low > 0:
            high = 7  # `sat-sun` reads naturally; Sunday closes the week here
        if high < low:
            return _wrapped_range(low, high, step, spec)
    elif slash:
        # `5/10` means `5-max/10`, as Quartz and croniter read it; the week ends on Saturday
        # there (7 is only an alias of Sunday, not a day after Saturday).
        high = 6 if spec.name == "day-of-week" else spec.high
    else:
        high = low
    return range(low, high + 1, step)


def _parse_value(where: str, token: str, spec: _FieldSpec) -> int:
    lowered = token.lower()
    if lowered in spec.names:
        return spec.names[lowered]
    if not _is_number(token):
        hint = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise CronError(f"{where}: {token!r} is not a number{hint}")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise CronError(f"{where} {value} is out of range {spec.low}-{spec.high}")
    return value


def _is_number(token: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²`` or ``٣``, which `int` refuses or
    reads as a value nobody meant."""
    return token.isascii() and token.isdigit()


def _wrapped_range(low: int, high: int, step: int, spec: _FieldSpec) -> Sequence[int]:
    """`fri-mon`, `nov-feb`, `22-2/2`: from `low` to the end of the cycle, on from its start.

    The step counts on across the wrap (`22-2/2` is 22, 0, 2), as croniter reads it. Weekdays
    cycle over 0-6, so `7-2` (Sunday through Tuesday) is an ordinary range.
    """
    top = spec.high
    if spec.name == "day-of-week":
        top, low = 6, low % 7
        if low <= high:
            return range(low, high + 1, step)
    cycle = [*range(low, top + 1), *range(spec.low, high + 1)]
    return cycle[::step]


#: The n of `fri#L`: the last such weekday of the month, whether it is the fourth or fifth.
LAST_WEEK = -1


def _split_last_days(text: str, part: str) -> tuple[str | None, frozenset[int]]:
    """Take the `L` and `L-n` items out of a day-of-month field; the rest parses as usual.

    The rest is None when every item was an `L` item (an empty string would hide `L,`).
    """
    plain, offsets = [], set()
    for item in part.split(","):
        upper = item.upper()
        if not upper.startswith("L"):
            plain.append(item)
            continue
        if upper == "L":
            offsets.add(0)
            continue
        count = upper.removeprefix("L-")
        if upper[1:2] != "-" or not _is_number(count) or not 0 <= int(count) <= 30:
            raise CronError(
                f"cron {text!r}: day-of-month {item!r} must be L (the last day) or L-n"
                " with n from 0 to 30 (n days before the last day)"
            )
        offsets.add(int(count))
    return (",".join(plain) if plain else None), frozenset(offsets)


def _split_nth_weekdays(text: str, part: str) -> tuple[str | None, frozenset[tuple[int, int]]]:
    """Take the `fri#2` and `fri#L` items out of a day-of-week field."""
    plain, nths = [], set()
    for item in part.split(","):
        weekday_text, hash_sign, nth_text = item.partition("#")
        if not hash_sign:
            plain.append(item)
            continue
        where = f"cron {text!r}: day-of-week {item!r}"
        lowered = weekday_text.lower()
        if lowered in _WEEKDAY_NAMES:
            weekday = _WEEKDAY_NAMES[lowered]
        elif _is_number(weekday_text) and int(weekday_text) <= 7:
            weekday = int(weekday_text) % 7
        else:
            raise CronError(f"{where}: before # must come one weekday (0-7 or sun-sat)")
        if nth_text.upper() == "L":
            nths.add((weekday, LAST_WEEK))
        elif _is_number(nth_text) and 1 <= int(nth_text) <= 5:
            nths.add((weekday, int(nth_text)))
        else:
            raise CronError(f"{where}: after # must come 1-5 or L (the last in the month)")
    return (",".join(plain) if plain else None), frozenset(nths)


def _is_last_day(day: date, offsets: frozenset[int]) -> bool:
    if not offsets:
        return False
    last = calendar.monthrange(day.year, day.month)[1]
    return last - day.day in offsets


def _is_nth_weekday(day: date, nths: frozenset[tuple[int, int]]) -> bool:
    if not nths:
        return False
    weekday = day.isoweekday() % 7
    if (weekday, (day.day - 1) // 7 + 1) in nths:
        return True
    last = calendar.monthrange(day.year, day.month)[1]
    return day.day + 7 > last and (weekday, LAST_WEEK) in nths


def _first_greater(ordered: tuple[int, ...], value: int) -> int | None:
    index = bisect.bisect_right(ordered, value)
    return ordered[index] if index < len(ordered) else None


def _add(moment: datetime, delta: timedelta) -> datetime | None:
    try:
        return moment + delta
    except OverflowError:
        return None


def _at(year: int, month: int, day: int) -> datetime | None:
    if year > 9999:
        return None
    return datetime(year, month, day)


def _start_of_next_day(moment: datetime) -> datetime | None:
    return _add(moment.replace(hour=0, minute=0), timedelta(days=1))


def _compact(values: frozenset[int]) -> str:
    return ",".join(str(value) for value in sorted(values))
