"""Run counts per entry, hour and state: what the dashboard's 24-hour strips are drawn from.

Counted in the database (GROUP BY), so an entry that runs every second costs 24 x states
rows, not 86,400 records. The hour is the first 13 characters of the slot's UTC text
(``2026-11-21 08``), which SQLite (text column) and PostgreSQL (timestamp cast to text) spell
the same way.

A scheduled run that succeeded but was dispatched more than `late_after` after its slot counts
as ``late`` rather than ``succeeded`` (the dashboard's "late" colour), decided in SQL as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, case, cast, extract, func, literal, select

from scheduling.store.database import Database
from scheduling.store.rows import chunks
from scheduling.store.schema import runs

__all__ = ["LATE", "HourlyCounts", "RunTimelines", "hour_key"]

LATE = "late"
"""The state key of succeeded scheduled runs dispatched past the lateness threshold."""

HourlyCounts = dict[str, dict[str, dict[str, int]]]
"""entry -> hour key (``YYYY-MM-DD HH``, UTC) -> state -> runs."""


def hour_key(instant: datetime) -> str:
    """The hour key of a UTC instant, as the counts spell it."""
    return instant.strftime("%Y-%m-%d %H")


class RunTimelines:
    """Timeline reads; mixed into `Store`, which provides `_db`."""

    _db: Database

    def hourly_run_counts(
        self, entries: Sequence[str], since: datetime, late_after: timedelta | None = None
    ) -> HourlyCounts:
        """Runs (scheduled and manual) of `entries` whose slot is after `since`, counted by
        state; with `late_after`, late successes under `LATE` (see module doc)."""
        hour = func.substr(cast(runs.c.scheduled_for, String), 1, 13).label("hour")
        state: ColumnElement[str] = runs.c.state
        if late_after is not None:
            late = (
                (runs.c.state == "succeeded")
                & runs.c.manual.is_(False)
                & (self._dispatch_delay_seconds() > late_after.total_seconds())
            )
            state = case((late, literal(LATE)), else_=runs.c.state)
        counts: HourlyCounts = {}
        with self._db.read() as conn:
            for part in chunks(sorted(set(entries))):
                statement = (
                    select(runs.c.entry, hour, state.label("outcome"), func.count())
                    .where(runs.c.entry.in_(part), runs.c.scheduled_for > since)
                    .group_by(runs.c.entry, hour, "outcome")
                )
                for entry, key, outcome, count in conn.execute(statement):
                    by_state = counts.setdefault(str(entry), {}).setdefault(str(key), {})
                    by_state[str(outcome)] = by_state.get(str(outcome), 0) + int(count)
        return counts

    def _dispatch_delay_seconds(self) -> ColumnElement[Any]:
        """Seconds from a run's slot to its dispatch (NULL until dispatched)."""
        delay: ColumnElement[Any]
        if self._db.is_postgresql:
            delay = extract("epoch", runs.c.dispatched_at - runs.c.scheduled_for)
        else:
            days = func.julianday(runs.c.dispatched_at) - func.julianday(runs.c.scheduled_for)
            delay = days * 86400.0
        return delay
