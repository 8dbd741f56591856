"""Broker and database outages as beat saw them: when dispatching stopped and started again.

Beat writes a row when the broker first fails and closes it when the broker answers again (the
store is usually fine while the broker is down); a database outage is written whole when the
database answers again (dependency ``"database"``, from beat's first failed tick to its first
good one). "Why did this slot not run?" then names the
outage instead of guessing. An outage whose start could not be written (the store was down
too) is written whole when it ends; one still open has no `ended_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, delete, or_, select, update

from scheduling.store.database import Database
from scheduling.store.schema import outages

__all__ = ["OutageRecord", "Outages"]


@dataclass(frozen=True)
class OutageRecord:
    dependency: str
    beat_id: str
    started_at: datetime
    ended_at: datetime | None


class Outages:
    """Outage writes and reads; mixed into `Store`, which provides `_db`."""

    _db: Database

    def outage_began(self, dependency: str, beat_id: str, at: datetime) -> int:
        """Open an outage; returns its id for `outage_ended`."""
        with self._db.write() as conn:
            result = conn.execute(
                outages.insert()
                .values(dependency=dependency, beat_id=beat_id, started_at=at)
                .returning(outages.c.id)
            )
            return int(result.scalar_one())

    def outage_ended(
        self,
        outage_id: int | None,
        at: datetime | None,
        *,
        dependency: str = "",
        beat_id: str = "",
        began: datetime | None = None,
    ) -> None:
        """Close outage `outage_id`; without one, record the whole stretch [began, at].

        `at` None is the moment this write got through (on SQLite: took the write lock), for
        a database outage that ends when writes go through again.
        """
        with self._db.write() as conn:
            at = at or datetime.now(UTC)
            if outage_id is not None:
                conn.execute(update(outages).where(outages.c.id == outage_id).values(ended_at=at))
            elif began is not None:
                conn.execute(
                    outages.insert().values(
                        dependency=dependency, beat_id=beat_id, started_at=began, ended_at=at
                    )
                )

    def outages_at(self, dependency: str, instant: datetime) -> list[OutageRecord]:
        """Outages of `dependency` that were going on at `instant` (open ones included)."""
        statement = select(outages).where(
            outages.c.dependency == dependency,
            outages.c.started_at <= instant,
            or_(outages.c.ended_at.is_(None), outages.c.ended_at >= instant),
        )
        with self._db.read() as conn:
            rows = conn.execute(statement.order_by(outages.c.started_at)).all()
        return [
            OutageRecord(str(row.dependency), str(row.beat_id), row.started_at, row.ended_at)
            for row in rows
        ]

    def purge_outages(self, older_than: datetime) -> int:
        """Delete outages that ended before `older_than`; return how many."""
        with self._db.write() as conn:
            result = conn.execute(
                delete(outages).where(
                    and_(outages.c.ended_at.is_not(None), outages.c.ended_at < older_than)
                )
            )
        return int(result.rowcount)
