"""How instants, durations and run states read on the dashboard (Jinja filters).

Pure functions, so the wording is unit-tested without a browser: people read "in 12 s" and
"3 min ago" faster than timestamps, and a state's colour class is chosen in one place.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from scheduling.store import RunState

__all__ = ["STATE_TONES", "duration", "local_time", "relative", "state_tone"]

STATE_TONES: dict[RunState, str] = {
    RunState.SUCCEEDED: "ok",
    RunState.FAILED: "bad",
    RunState.EXPIRED: "bad",
    RunState.REVOKED: "bad",
    RunState.MISSED: "warn",
    RunState.SKIPPED: "warn",
    RunState.PENDING: "info",
    RunState.DISPATCHED: "info",
    RunState.STARTED: "info",
    RunState.RETRY: "warn",
}


def state_tone(state: str) -> str:
    """CSS tone of a run state: ok, bad, warn or info."""
    try:
        return STATE_TONES[RunState(state)]
    except ValueError:
        return "info"


def local_time(instant: datetime | None, zone: str = "UTC") -> str:
    """``2026-03-29 03:00:00 CEST`` in ``zone``; an em dash for no instant."""
    if instant is None:
        return "—"
    local = instant.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def relative(instant: datetime | None, now: datetime) -> str:
    """``in 12 s`` / ``3 min ago`` / ``now``; empty for no instant."""
    if instant is None:
        return ""
    delta = (instant - now).total_seconds()
    span = _span(delta)
    if span == "now":
        return "now"
    return f"in {span}" if delta > 0 else f"{span} ago"


def duration(seconds: float | None) -> str:
    """A run time: ``0.12 s``, ``14 s``, ``2 min 5 s``, ``1 h 3 min``; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
