"""Counts and histogram buckets of ledger events, computed in the database (metrics counters).

`/metrics` counts what happened since a point in time (00:00 UTC): runs finished, by outcome,
with their runtimes; runs confirmed, with their dispatch lag. Summing in SQL keeps a scrape's
cost to two indexed aggregate queries instead of a row per run in Python: at 100,000 runs a day
building the rows in Python cost 0.76 s on SQLite, the sums 0.5 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from scheduling.store.database import Database
from scheduling.store.records import UNFINISHED_STATES
from scheduling.store.schema import runs

__all__ = ["Histogram", "LedgerTallies", "Tallies"]

_UNFINISHED = sorted(state.value for state in UNFINISHED_STATES)


@dataclass
class Histogram:
    """Cumulative bucket counts (one per bound, then +Inf as `count`) and the sum."""

    buckets: list[int]
    count: int = 0
    total: float = 0.0

    def add(self, other: Histogram) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.count += other.count
        self.total += other.total


@dataclass
class Tallies:
    """Keys are ``(entry, queue)`` with entries, ``(queue,)`` without (queue "" when unknown)."""

    finished: dict[tuple[str, ...], dict[str, int]] = field(default_factory=dict)
    """key -> state -> runs that reached that finished state."""
    durations: dict[tuple[str, ...], Histogram] = field(default_factory=dict)
    dispatches: dict[tuple[str, ...], int] = field(default_factory=dict)
    lags: dict[str, Histogram] = field(default_factory=dict)
    """queue -> slot time to confirmed dispatch, scheduled runs only."""


def _bucket_sums(value: ColumnElement[Any], bounds: Sequence[float]) -> list[Any]:
    return [func.sum(case((value <= bound, 1), else_=0)) for bound in bounds]


class LedgerTallies:
    """Mixed into `Store`, which provides `_db`."""

    _db: Database

    def _lag_seconds(self) -> ColumnElement[Any]:
        if self._db.dialect == "sqlite":
            days = func.julianday(runs.c.dispatched_at) - func.julianday(runs.c.scheduled_for)
            seconds: ColumnElement[Any] = days * 86400.0
        else:
            seconds = func.extract("epoch", runs.c.dispatched_at - runs.c.scheduled_for)
        return case((seconds < 0, 0.0), else_=seconds)

    def ledger_tallies(
        self,
        since: datetime,
        *,
        per_entry: bool,
        duration_bounds: Sequence[float],
        lag_bounds: Sequence[float],
    ) -> Tallies:
        """Runs finished at or after `since` and runs confirmed at or after it.

        A run confirmed after `since` is unfinished or finished after it, so the second query
        stays on the finished-at and state indexes.
        """
        keys = [runs.c.entry, runs.c.queue] if per_entry else [runs.c.queue]
        finished = (
            select(
                *keys,
                runs.c.state,
                func.count(),
                func.count(runs.c.runtime),
                func.coalesce(func.sum(runs.c.runtime), 0.0),
                *_bucket_sums(runs.c.runtime, duration_bounds),
            )
            .where(runs.c.finished_at >= since)
            .group_by(*keys, runs.c.state)
        )
        lag = self._lag_seconds()
        scheduled = not_(runs.c.manual)
        dispatched = (
            select(
                *keys,
                func.count(),
                func.sum(case((scheduled, 1), else_=0)),
                func.coalesce(func.sum(case((scheduled, lag), else_=0.0)), 0.0),
                *_bucket_sums(case((scheduled, lag), else_=None), lag_bounds),
            )
            .where(
                or_(runs.c.finished_at >= since, runs.c.state.in_(_UNFINISHED)),
                runs.c.dispatched_at >= since,
            )
            .group_by(*keys)
        )
        tallies = Tallies()
        width = len(keys)
        with self._db.read() as conn:
            finished_rows = conn.execute(finished).all()
            dispatched_rows = conn.execute(dispatched).all()
        for row in finished_rows:
            key = tuple(value or "" for value in row[:width])
            state, count, timed, total = row[width], row[width + 1], row[width + 2], row[width + 3]
            tallies.finished.setdefault(key, {})[str(state)] = int(count)
            if timed:
                buckets = [int(value or 0) for value in row[width + 4 :]]
                histogram = tallies.durations.setdefault(key, Histogram([0] * len(buckets)))
                histogram.add(Histogram(buckets, int(timed), float(total)))
        for row in dispatched_rows:
            key = tuple(value or "" for value in row[:width])
            count, lagged, total = row[width], row[width + 1], row[width + 2]
            tallies.dispatches[key] = int(count)
            if lagged:
                buckets = [int(value or 0) for value in row[width + 3 :]]
                histogram = tallies.lags.setdefault(key[-1], Histogram([0] * len(buckets)))
                histogram.add(Histogram(buckets, int(lagged), float(total)))
        return tallies
