"""Schedules in words, for the dashboard, the CLI and previews.

It works on plain values (sorted field values, durations) rather than on schedule objects, so
the schedule modules can use it without an import cycle. The phrasing favours the common cases
("at 08:00 on Monday through Friday", "every 15 minutes") and falls back to listing values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

__all__ = ["describe_cron_fields", "describe_every"]

_WEEKDAYS_FROM_MONDAY = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)  # fmt: skip
_MONTHS = (
    "",  # months count from 1
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MAX_LISTED_TIMES = 6
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def describe_every(every: timedelta) -> str:
    """ "every hour", "every 15 minutes", "every 1 hour 30 minutes"."""
    micros = every // timedelta(microseconds=1)
    if micros % 1_000_000:
        return f"every {every.total_seconds():g} seconds"
    seconds = micros // 1_000_000
    for unit, size in _UNITS[:-1]:
        if seconds == size:
            return f"every {unit}"
        if seconds % size == 0:
            return f"every {_plural(seconds // size, unit)}"
    if seconds < 60:
        return "every second" if seconds == 1 else f"every {seconds} seconds"
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(_plural(count, unit))
    return "every " + " ".join(parts)


def describe_cron_fields(
    *,
    minutes: Sequence[int],
    hours: Sequence[int],
    days_of_month: Sequence[int],
    months: Sequence[int],
    days_of_week: Sequence[int],
    dom_restricted: bool,
    dow_restricted: bool,
    last_day_offsets: Sequence[int] = (),
    nth_weekdays: Sequence[tuple[int, int]] = (),
) -> str:
    """Words for a cron expression given its expanded, sorted fields.

    `dom_restricted`/`dow_restricted` say whether the field text did not start with `*`, which
    decides whether a day must match both day fields or either (Vixie cron's rule).
    `last_day_offsets` (`L` = 0, `L-3` = 3) and `nth_weekdays` ((5, 2) = `fri#2`, (5, -1) =
    `fri#L`) are the day items that are not plain numbers.
    """
    phrase = _time_phrase(minutes, hours)
    plain_days = not last_day_offsets and not nth_weekdays
    if plain_days and len(days_of_month) == 1 and len(months) == 1 and len(days_of_week) == 7:
        return f"{phrase} on {_MONTHS[months[0]]} {days_of_month[0]}"
    dom_words = [_last_day_words(offset) for offset in last_day_offsets]
    dow_words = [_nth_weekday_words(weekday, nth) for weekday, nth in nth_weekdays]
    days = _day_phrase(
        days_of_month, days_of_week, dom_restricted, dow_restricted, dom_words, dow_words
    )
    if days:
        phrase = f"{phrase} {days}"
    elif "every" not in phrase:
        phrase = f"{phrase} every day"
    if len(months) < 12:
        phrase = f"{phrase} in {_names(months, _MONTHS)}"
    return phrase


def _time_phrase(minutes: Sequence[int], hours: Sequence[int]) -> str:
    all_hours = len(hours) == 24
    step = _step_from_zero(minutes, 60)
    if all_hours:
        if len(minutes) == 60:
            return "every minute"
        if step:
            return f"every {step} minutes"
        if minutes == [0]:
            return "every hour"
        return f"at {_plural_word('minute', minutes)} {_listing(minutes)} of every hour"
    if len(minutes) * len(hours) <= _MAX_LISTED_TIMES:
        times = [f"{hour:02d}:{minute:02d}" for hour in hours for minute in minutes]
        return f"at {_join(times)}"
    hour_step = _step_from_zero(hours, 24)
    if hour_step and minutes == [0]:
        return f"every {hour_step} hours"
    hour_text = (
        f"every {_ordinal(hour_step)} hour"
        if hour_step
        else (f"{_plural_word('hour', hours)} {_listing(hours)}")
    )
    if len(minutes) == 60:
        return f"every minute past {hour_text}"
    if step:
        return f"every {step} minutes past {hour_text}"
    return f"at {_plural_word('minute', minutes)} {_listing(minutes)} past {hour_text}"


def _day_phrase(
    days_of_month: Sequence[int],
    days_of_week: Sequence[int],
    dom_restricted: bool,
    dow_restricted: bool,
    dom_words: Sequence[str] = (),
    dow_words: Sequence[str] = (),
) -> str:
    """`dom_words`/`dow_words` name the `L` and `#` items, which have no number of their own."""
    dom_text = ""
    day_step = _step_from_one(days_of_month, 31)
    if day_step:
        dom_text = f"on every {_ordinal(day_step)} day"
    elif 0 < len(days_of_month) < 31:
        dom_text = f"on {_plural_word('day', days_of_month)} {_listing(days_of_month)}"
    if dom_words:
        dom_text = f"{dom_text} and {_join(dom_words)}" if dom_text else f"on {_join(dom_words)}"
    if dom_text:
        dom_text += " of the month"
    dow_text = ""
    if 0 < len(days_of_week) < 7:
        # Weeks read Monday first, so `sat,sun` is "Saturday and Sunday".
        monday_first = sorted((day + 6) % 7 for day in days_of_week)
        dow_text = f"on {_names(monday_first, _WEEKDAYS_FROM_MONDAY)}"
    if dow_words:
        dow_text = f"{dow_text} and {_join(dow_words)}" if dow_text else f"on {_join(dow_words)}"
    if dom_text and dow_text:
        if dom_restricted and dow_restricted:
            return f"{dom_text} or {dow_text}"
        weekdays = " or ".join(dow_text.removeprefix("on ").rsplit(" and ", 1))
        return f"{dom_text} if it falls on {weekdays}"
    return dom_text or dow_text


def _last_day_words(offset: int) -> str:
    if offset == 0:
        return "the last day"
    return f"the day {_plural(offset, 'day')} before the last day"


_NTH_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}


def _nth_weekday_words(weekday: int, nth: int) -> str:
    return f"the {_NTH_WORDS[nth]} {_WEEKDAYS_FROM_MONDAY[(weekday + 6) % 7]}"


def _names(values: Sequence[int], names: Sequence[str]) -> str:
    """Contiguous runs of three or more read as "Monday through Friday"; `names[i]` names i."""
    words = []
    for first, last in _runs(values):
        if last - first >= 2:
            words.append(f"{names[first]} through {names[last]}")
        else:
            words.extend(names[value] for value in range(first, last + 1))
    return _join(words)


def _listing(values: Sequence[int]) -> str:
    words = []
    for first, last in _runs(values):
        if last - first >= 2:
            words.append(f"{first}-{last}")
        else:
            words.extend(str(value) for value in range(first, last + 1))
    return _join(words)


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _step_from_zero(values: Sequence[int], size: int) -> int | None:
    """The n of `*/n` when `values` is exactly 0, n, 2n, ... below `size` (n > 1)."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1]
    return step if step > 1 and list(values) == list(range(0, size, step)) else None


def _step_from_one(values: Sequence[int], days: int) -> int | None:
    """The n of `*/n` in the day-of-month field: exactly 1, 1+n, 1+2n, ... (n > 1)."""
    if len(values) < 2 or values[0] != 1:
        return None
    step = values[1] - 1
    return step if step > 1 and list(values) == list(range(1, days + 1, step)) else None


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _plural_word(unit: str, values: Sequence[int]) -> str:
    return unit if len(values) == 1 else f"{unit}s"


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
