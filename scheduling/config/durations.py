"""Human durations in settings: ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"``, ``"250ms"``.

Strings only, on purpose: a bare ``30`` in TOML is ambiguous (seconds? minutes?), so it is
rejected with a message that shows the accepted form instead of being guessed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")


def parse_duration(text: str) -> timedelta:
    """Parse ``"1h30m"`` into a timedelta; raise ValueError naming the accepted form."""
    cleaned = text.strip().lower().replace(" ", "")
    position = 0
    seconds = 0.0
    seen: set[str] = set()
    for match in _PART.finditer(cleaned):
        if match.start() != position or match.group(2) in seen:
            break
        seen.add(match.group(2))
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise ValueError(
            f"{text!r} is not a duration; expected a string like '90s', '15m', '1h30m' or '2d'"
        )
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    """The shortest string that `parse_duration` reads back as `value`."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if total_ms:
        parts.append(f"{total_ms}ms")
    return "".join(parts)


def _coerce(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(
        f"{value!r} is not a duration; expected a string like '90s', '15m', '1h30m' or '2d'"
    )


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str, when_used="json-unless-none"),
]
"""A non-negative timedelta written as a string in settings and JSON."""
