"""Change signals: how a writer tells a sleeping beat that the change sequence moved.

Beat used to read the change sequence four times per `sync_interval` just in case; that poll is
most of an idle beat's CPU and still makes every change wait for it. A signal lets beat sleep
until something happened:

* PostgreSQL: every write that bumps the sequence also sends ``NOTIFY periodic_changes`` in the
  same transaction, so the notification is delivered at commit and never before the change is
  visible. The leader ``LISTEN``s on one dedicated autocommit connection (`PostgresListener`)
  whose socket it `select`s on together with its other wake-ups.
* SQLite has no notifications across processes. `PRAGMA data_version` on one held connection
  changes whenever *another* connection commits to the file: a few microseconds per look, no
  file I/O beyond the WAL index in shared memory, so beat can afford to look four times per
  `sync_interval` and reads the sequence only when the file changed (`SqliteDataVersion`).

A signal is a hint, never the source of truth: whoever wakes on it reads the change sequence,
and beat still reads the sequence once per `sync_interval` without any signal, so a lost
notification (a dropped LISTEN connection, a commit between two looks) costs at most one
`sync_interval`. Any fault of a signal raises `StoreError`; the caller falls back to polling and
reconnects later.
"""

from __future__ import annotations

import select
import sqlite3
from typing import Protocol

import psycopg
from sqlalchemy import Connection, text

from scheduling.errors import StoreError
from scheduling.store.database import Database

__all__ = [
    "CHANNEL",
    "ChangeSignal",
    "PostgresListener",
    "SqliteDataVersion",
    "notify_change",
    "open_change_signal",
]

CHANNEL = "periodic_changes"
_NOTIFY = text(f"NOTIFY {CHANNEL}")
_CONNECT_TIMEOUT_S = 3


def notify_change(conn: Connection) -> None:
    """Queue the change notification in `conn`'s transaction (sent at commit; PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY)


class ChangeSignal(Protocol):
    """A source of "the store may have changed" hints (see module doc)."""

    def fileno(self) -> int | None:
        """A socket that turns readable on a notification, or None: then `changed` is polled."""

    def changed(self) -> bool:
        """Whether a change was signalled since the last call (consumes it); never blocks."""

    def close(self) -> None: ...


class PostgresListener:
    """``LISTEN periodic_changes`` on a connection of its own (autocommit, outside the pool)."""

    def __init__(self, db: Database) -> None:
        cargs, cparams = db.engine.dialect.create_connect_args(db.url)
        cparams.pop("context", None)
        cparams.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
        try:
            self._conn = psycopg.connect(*cargs, **cparams, autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as error:
            raise StoreError(f"store {db.safe_url}: cannot LISTEN for changes: {error}") from error
        self._safe_url = db.safe_url

    def fileno(self) -> int | None:
        return self._conn.fileno()

    def changed(self) -> bool:
        pgconn = self._conn.pgconn
        try:
            readable, _, _ = select.select([self._conn.fileno()], [], [], 0)
            if readable:
                pgconn.consume_input()
            seen = False
            while pgconn.notifies() is not None:
                seen = True
        except (psycopg.Error, OSError, ValueError) as error:
            raise StoreError(f"store {self._safe_url}: change listener lost: {error}") from error
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise StoreError(f"store {self._safe_url}: change listener lost its connection")
        return seen

    def close(self) -> None:
        self._conn.close()


class SqliteDataVersion:
    """`PRAGMA data_version` on a held connection: it moves when another connection commits."""

    def __init__(self, db: Database) -> None:
        path = db.url.database or ""
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._version = self._read()
        except sqlite3.Error as error:
            raise StoreError(f"store {db.safe_url}: cannot watch for changes: {error}") from error
        self._safe_url = db.safe_url

    def _read(self) -> int:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def fileno(self) -> int | None:
        return None

    def changed(self) -> bool:
        try:
            version = self._read()
        except sqlite3.Error as error:
            message = f"store {self._safe_url}: cannot watch for changes: {error}"
            raise StoreError(message) from error
        if version == self._version:
            return False
        self._version = version
        return True

    def close(self) -> None:
        self._conn.close()


def open_change_signal(db: Database) -> ChangeSignal | None:
    """The signal for `db`'s backend, or None where there is none (an in-memory SQLite store).

    Raises StoreError when the backend has one but it cannot be opened now.
    """
    if db.is_postgresql:
        return PostgresListener(db)
    if db.url.database in (None, "", ":memory:") or str(db.url.database).startswith("file:"):
        return None
    return SqliteDataVersion(db)
