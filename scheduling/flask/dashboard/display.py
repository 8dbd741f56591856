"""How instants, durations and run states read on the dashboard (Jinja filters).

Pure functions, so the wording is unit-tested without a browser: people read "in 12 s" and
"3 min ago" faster than timestamps, and a state's colour class is chosen in one place.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from scheduling.store import HistoryRecord, RunState

__all__ = ["STATE_TONES", "duration", "history_lines", "local_time", "relative", "state_tone"]

_ACTION_WORDS = {
    "create": "created",
    "update": "changed",
    "delete": "deleted",
    "pause": "paused",
    "resume": "resumed",
    "run_now": "ran it now",
    "backfill": "backfilled",
}

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


def history_lines(record: HistoryRecord) -> tuple[str, list[str]]:
    """A history record in words: the action ("changed") and one line per detail.

    An update lists each field as ``cron: "0 8 * * *" → "0 9 * * *"``, a default as
    ``(default)``; a create or delete lists the definition's fields as stored.
    """
    action = _ACTION_WORDS.get(record.action, record.action)
    details = record.details
    if record.action == "update":
        changes = details.get("changes", {})
        return action, [
            f"{field}: {_value(change.get('from'))} → {_value(change.get('to'))}"
            for field, change in changes.items()
        ]
    if "definition" in details:
        return action, [f"{key} = {_value(value)}" for key, value in details["definition"].items()]
    if record.action == "run_now":
        return action, [f"task {details.get('task_id', '?')}"]
    return action, [f"{key}: {_value(value)}" for key, value in details.items()]


def _value(value: Any) -> str:
    return "(default)" if value is None else json.dumps(value, ensure_ascii=False)
