"""Entries in error (written by beat, read by API and health) and revoked dashboard sessions:
the two small tables of things that must be known to every process, not only the one that
learnt them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.sql.expression import bindparam

from scheduling.store.database import Database, dialect_insert
from scheduling.store.records import EntryFault
from scheduling.store.rows import chunks
from scheduling.store.schema import entry_faults, revoked_sessions

MESSAGE_LENGTH = 2000


class FaultOperations:
    """Reads and writes of `periodic_entry_faults`; mixed into `Store`, which provides `_db`."""

    _db: Database

    def record_entry_faults(self, faults: Sequence[EntryFault]) -> None:
        """Insert or replace the fault of each named entry (one transaction)."""
        if not faults:
            return
        statement = dialect_insert(self._db, entry_faults)
        statement = statement.on_conflict_do_update(
            index_elements=[entry_faults.c.name],
            set_={
                key: statement.excluded[key] for key in ("message", "failures", "since", "retry_at")
            },
        )
        rows = [
            {
                "name": fault.name,
                "message": fault.message[:MESSAGE_LENGTH],
                "failures": fault.failures,
                "since": fault.since,
                "retry_at": fault.retry_at,
            }
            for fault in faults
        ]
        with self._db.write() as conn:
            conn.execute(statement, rows)

    def clear_entry_faults(self, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        statement = delete(entry_faults).where(
            entry_faults.c.name.in_(bindparam("b_names", expanding=True))
        )
        with self._db.write() as conn:
            for part in chunks(names):
                conn.execute(statement, {"b_names": list(part)})

    def entry_faults(self, names: Iterable[str] | None = None) -> dict[str, EntryFault]:
        """Faults by entry name: of `names`, or all of them (a short table: entries in error)."""
        statement = select(entry_faults).order_by(entry_faults.c.name)
        if names is not None:
            wanted = list(names)
            if not wanted:
                return {}
            statement = statement.where(entry_faults.c.name.in_(wanted))
        with self._db.read() as conn:
            rows = conn.execute(statement).all()
        return {
            row.name: EntryFault(row.name, row.message, row.failures, row.since, row.retry_at)
            for row in rows
        }


class SessionOperations:
    """Dashboard sign-outs, so a copied cookie dies with its session on every web process."""

    _db: Database

    def revoke_session(self, session_id: str, expires_at: datetime, now: datetime) -> None:
        statement = dialect_insert(self._db, revoked_sessions).values(
            session_id=session_id, expires_at=expires_at
        )
        statement = statement.on_conflict_do_nothing(index_elements=[revoked_sessions.c.session_id])
        with self._db.write() as conn:
            conn.execute(delete(revoked_sessions).where(revoked_sessions.c.expires_at < now))
            conn.execute(statement)

    def session_revoked(self, session_id: str) -> bool:
        statement = select(revoked_sessions.c.session_id).where(
            revoked_sessions.c.session_id == session_id
        )
        with self._db.read() as conn:
            return conn.execute(statement).first() is not None
