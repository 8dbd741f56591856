"""Leadership terms: when each beat led, kept so a past instant can be asked "was a beat leading?".

The lease row only knows the present. A term row is opened when a beat takes the lease (a new
holder, or the same holder again after its lease lapsed) and closed when it is released or
taken over, so writes happen only when leadership changes, never on the per-second renewal.
An open term lasts until the lease's `expires_at`: a leader that died leaves its term open,
and the lease's expiry says when it stopped leading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, delete, or_, select, update

from scheduling.store.database import Database
from scheduling.store.schema import LEASE_NAME, lease, lease_terms

__all__ = ["LeaseTerm", "LeaseTerms", "close_terms", "open_term"]


@dataclass(frozen=True)
class LeaseTerm:
    holder: str
    token: int
    started_at: datetime
    ended_at: datetime
    """When it ended: released, taken over, or (still open) the lease's current expiry."""


def open_term(
    conn: Connection, holder: str, token: int, now: datetime, lapsed_at: datetime
) -> None:
    """Close whatever term is open (it ended by `lapsed_at` at the latest), open `holder`'s."""
    close_terms(conn, lapsed_at)
    conn.execute(lease_terms.insert().values(holder=holder, token=token, started_at=now))


def close_terms(conn: Connection, at: datetime, *, holder: str | None = None) -> None:
    """End the open term (only `holder`'s, when given) at `at`."""
    statement = update(lease_terms).where(lease_terms.c.ended_at.is_(None))
    if holder is not None:
        statement = statement.where(lease_terms.c.holder == holder)
    conn.execute(statement.values(ended_at=at))


class LeaseTerms:
    """Reading and pruning terms; mixed into `Store`, which provides `_db`."""

    _db: Database

    def lease_terms(self, start: datetime, end: datetime) -> list[LeaseTerm]:
        """Terms overlapping [start, end], oldest first; open ones end at the lease's expiry."""
        with self._db.read() as conn:
            expires_at = conn.execute(
                select(lease.c.expires_at).where(lease.c.name == LEASE_NAME)
            ).scalar_one()
            rows = conn.execute(
                select(lease_terms)
                .where(
                    lease_terms.c.started_at <= end,
                    or_(lease_terms.c.ended_at.is_(None), lease_terms.c.ended_at >= start),
                )
                .order_by(lease_terms.c.started_at)
            ).all()
        return [
            LeaseTerm(
                holder=str(row.holder),
                token=int(row.token),
                started_at=row.started_at,
                ended_at=row.ended_at if row.ended_at is not None else expires_at,
            )
            for row in rows
        ]

    def first_lease_term_at(self) -> datetime | None:
        """When the oldest kept term began: before it, leadership is unknown."""
        with self._db.read() as conn:
            first: datetime | None = conn.execute(
                select(lease_terms.c.started_at).order_by(lease_terms.c.started_at).limit(1)
            ).scalar_one_or_none()
        return first

    def purge_lease_terms(self, older_than: datetime) -> int:
        """Delete terms that ended before `older_than`; return how many."""
        with self._db.write() as conn:
            result = conn.execute(
                delete(lease_terms).where(
                    and_(lease_terms.c.ended_at.is_not(None), lease_terms.c.ended_at < older_than)
                )
            )
        return int(result.rowcount)
