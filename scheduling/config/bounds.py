"""Limits on what may enter the schedule, checked where values come in (settings, API, CLI).

Every instant, duration and argument that reaches beat is later added, subtracted, converted
between zones and serialised. A value far outside what any schedule needs (a start in year
9999, a jitter of 270,000 years, kwargs nested a thousand deep) does not make a schedule, it
makes an `OverflowError` in the middle of a tick. So the bounds are generous for real
schedules and far enough from the limits of `datetime` that any arithmetic beat does on an
accepted value stays representable:

* instants lie in [1970-01-01, 9000-01-01) UTC, so they convert into every zone and
  ``instant + duration`` never leaves `datetime`'s range;
* durations (`every`, `misfire_grace`, `expires`) are at most `MAX_DURATION` and `jitter` at
  most `MAX_JITTER` (and below `every`);
* task arguments nest at most `MAX_JSON_DEPTH` levels; a definition's arguments and
  description take at most ``[app].max_definition_size`` bytes of JSON.

Values read back from the store are not re-checked (see `STORED`): bounds guard the door, and
an entry stored before a bound tightened must still be readable, listable and deletable.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationInfo

__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_DURATION",
    "MAX_JITTER",
    "MAX_JSON_DEPTH",
    "STORED",
    "check_duration",
    "check_instant",
    "check_json_depth",
    "definition_size",
    "from_store",
    "json_depth",
    "refuse_number",
]

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_DURATION = timedelta(days=3660)
"""Ten years: the longest `every`, `misfire_grace` or `expires`."""
MAX_JITTER = timedelta(days=1)
MAX_JSON_DEPTH = 32
STORED = {"stored": True}
"""Validation context of definitions read back from the store: bounds are not re-checked."""

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*\Z")


def from_store(info: ValidationInfo | None) -> bool:
    context = info.context if info is not None else None
    return isinstance(context, dict) and bool(context.get("stored"))


def refuse_number(value: Any) -> Any:
    """Instants are ISO-8601 text (or TOML datetimes), never epoch numbers: ``0`` is no date."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an ISO-8601 instant like 2026-01-01T00:00:00Z, not a number")
    if isinstance(value, str) and _NUMBER.match(value):
        raise ValueError(
            f"expected an ISO-8601 instant like 2026-01-01T00:00:00Z, not the number {value!r}"
        )
    return value


def check_instant(value: datetime) -> datetime:
    """`value` if it lies in the supported range, else ValueError naming the range."""
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            "must lie between 1970-01-01T00:00:00Z and 9000-01-01T00:00:00Z "
            "(the supported range, in every time zone)"
        )
    return value


def check_duration(value: timedelta, limit: timedelta = MAX_DURATION) -> timedelta:
    if value > limit:
        days = limit // timedelta(days=1)
        raise ValueError(f"must be at most {days}d")
    return value


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH + 1:
                return depth  # deep enough to refuse; no need to walk further
            stack.extend((child, depth) for child in item)
    return deepest


def check_json_depth(value: Any) -> Any:
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nests more than {MAX_JSON_DEPTH} levels deep")
    return value


def definition_size(args: Any, kwargs: Any, description: str) -> int:
    """Bytes of JSON that `args`, `kwargs` and `description` take in every message and row."""
    encoded = json.dumps([args, kwargs, description], ensure_ascii=False, separators=(",", ":"))
    return len(encoded.encode())
