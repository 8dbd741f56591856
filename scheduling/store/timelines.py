"""Run counts per entry, hour and state: what the dashboard's 24-hour strips are drawn from.

Counted in the database (GROUP BY), so an entry that runs every second costs 24 x states
rows, not 86,400 records. The hour is the first 13 characters of the slot's UTC text
(``2026-11-21 08``), which SQLite (text column) and PostgreSQL (timestamp cast to text) spell
the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, cast, func, select

from scheduling.store.database import Database
from scheduling.store.rows import chunks
from scheduling.store.schema import runs

__all__ = ["HourlyCounts", "RunTimelines", "hour_key"]

HourlyCounts = dict[str, dict[str, dict[str, int]]]
"""entry -> hour key (``YYYY-MM-DD HH``, UTC) -> state -> runs."""


def hour_key(instant: datetime) -> str:
    """The hour key of a UTC instant, as the counts spell it."""
    return instant.strftime("%Y-%m-%d %H")


class RunTimelines:
    """Timeline reads; mixed into `Store`, which provides `_db`."""

    _db: Database

    def hourly_run_counts(self, entries: Sequence[str], since: datetime) -> HourlyCounts:
        """Runs (scheduled and manual) of `entries` whose slot is after `since`, counted."""
        hour = func.substr(cast(runs.c.scheduled_for, String), 1, 13).label("hour")
        counts: HourlyCounts = {}
        with self._db.read() as conn:
            for part in chunks(sorted(set(entries))):
                statement = (
                    select(runs.c.entry, hour, runs.c.state, func.count())
                    .where(runs.c.entry.in_(part), runs.c.scheduled_for > since)
                    .group_by(runs.c.entry, hour, runs.c.state)
                )
                for entry, key, state, count in conn.execute(statement):
                    by_state = counts.setdefault(str(entry), {}).setdefault(str(key), {})
                    by_state[str(state)] = int(count)
        return counts
