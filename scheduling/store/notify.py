"""Change signals: how a writer tells a sleeping beat that the change sequence moved.

Beat used to read the change sequence four times per `sync_interval` just in case; that poll is
most of an idle beat's CPU and still makes every change wait for it. A signal lets beat sleep
until something happened:

* PostgreSQL: every write that bumps the sequence also sends ``NOTIFY periodic_changes`` in the
  same transaction, so the notification is delivered at commit and never before the change is
  visible. The leader ``LISTEN``s on one dedicated autocommit connection (`PostgresListener`)
  whose socket it `select`s on together with its other wake-ups.
* SQLite has no notifications across processes. `PRAGMA data_version` on one held connection
  changes whenever *another* connection commits to the file (`SqliteDataVersion`). On Linux an
  inotify descriptor on the database and its WAL file turns readable when any process writes
  them, so beat sleeps in `select` on it and looks at data_version only then (a write that is
  not a commit, or a commit of our own connection, wakes it for nothing: a few microseconds).
  A moved data_version counts only when the change sequence moved too, so commits to other
  tables (the beat's own lease renewals, workers' run reports) do not make beat tick.
  Elsewhere, or when inotify is unavailable, data_version is looked at every few hundred ms.

A signal is a hint, never the source of truth: whoever wakes on it reads the change sequence,
and beat still reads the sequence once per `sync_interval` without any signal, so a lost
notification (a dropped LISTEN connection, a commit between two looks) costs at most one
`sync_interval`. Any fault of a signal raises `StoreError`; the caller falls back to polling and
reconnects later.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import sqlite3
import sys
import time
from typing import Protocol

import psycopg
from sqlalchemy import Connection, text

from scheduling.errors import StoreError
from scheduling.store.database import Database

__all__ = [
    "CHANNEL",
    "LISTENER_NAME",
    "ChangeSignal",
    "PostgresListener",
    "SqliteDataVersion",
    "notify_change",
    "open_change_signal",
]

CHANNEL = "periodic_changes"
LISTENER_NAME = "periodic-beat-listener"
"""The application_name of the leader's LISTEN connection (visible in pg_stat_activity)."""
_NOTIFY = text(f"NOTIFY {CHANNEL}")
_CURRENT_SEQ = "SELECT seq FROM periodic_changes WHERE id = 1"
_CURRENT_SEQ_SQL = _CURRENT_SEQ.encode()
_CONNECT_TIMEOUT_S = 3
_COMMIT_SETTLE_S = 0.005


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

    def current_seq(self) -> int:
        """The change sequence, read on the signal's own connection (no pool, no ORM layer):
        the poll fallback runs every sync_interval for the life of the beat."""

    def close(self) -> None: ...


class PostgresListener:
    """``LISTEN periodic_changes`` on a connection of its own (autocommit, outside the pool)."""

    def __init__(self, db: Database) -> None:
        cargs, cparams = db.engine.dialect.create_connect_args(db.url)
        cparams.pop("context", None)
        cparams.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
        cparams.setdefault("application_name", LISTENER_NAME)
        self._pending = False
        try:
            self._conn = psycopg.connect(*cargs, **cparams, autocommit=True)
            # Notifications that arrive while `current_seq` runs are consumed by psycopg and
            # handed to this handler, not left for `changed`: keep them.
            self._conn.add_notify_handler(self._on_notify)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as error:
            raise StoreError(f"store {db.safe_url}: cannot LISTEN for changes: {error}") from error
        self._safe_url = db.safe_url

    def _on_notify(self, _notify: psycopg.Notify) -> None:
        self._pending = True

    def fileno(self) -> int | None:
        return self._conn.fileno()

    def changed(self) -> bool:
        pgconn = self._conn.pgconn
        try:
            poller = select.poll()
            poller.register(self._conn.fileno(), select.POLLIN)
            if poller.poll(0):
                pgconn.consume_input()
            seen, self._pending = self._pending, False
            while pgconn.notifies() is not None:
                seen = True
        except (psycopg.Error, OSError, ValueError) as error:
            raise StoreError(f"store {self._safe_url}: change listener lost: {error}") from error
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise StoreError(f"store {self._safe_url}: change listener lost its connection")
        return seen

    def current_seq(self) -> int:
        # libpq's own exec, not a psycopg cursor: a quarter of the CPU, taken cold once per
        # sync_interval. Notifications that arrive meanwhile stay queued in libpq for `changed`.
        try:
            result = self._conn.pgconn.exec_(_CURRENT_SEQ_SQL)
        except psycopg.Error as error:
            raise StoreError(f"store {self._safe_url}: change listener lost: {error}") from error
        if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise StoreError(f"store {self._safe_url}: change listener lost: {message}")
        value = result.get_value(0, 0) if result.ntuples else None
        if value is None:
            raise StoreError(f"store {self._safe_url}: the change sequence row is missing")
        return int(value)

    def close(self) -> None:
        self._conn.close()


class _Inotify:
    """Linux inotify through libc: a descriptor that turns readable when watched files change."""

    _IN_MODIFY = 0x00000002
    _IN_NONBLOCK = 0o4000
    _IN_CLOEXEC = 0o2000000

    def __init__(self, paths: list[str]) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(self._IN_NONBLOCK | self._IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = int(fd)
        for path in paths:
            if libc.inotify_add_watch(self.fd, os.fsencode(path), self._IN_MODIFY) < 0:
                error = ctypes.get_errno()
                os.close(self.fd)
                raise OSError(error, f"inotify_add_watch failed for {path}")

    def drain(self) -> bool:
        """Consume the pending events; whether there were any."""
        seen = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                seen = True
        return seen

    def close(self) -> None:
        os.close(self.fd)


def _inotify(paths: list[str]) -> _Inotify | None:
    """An inotify watch on `paths`, or None where there is none (not Linux, no such files)."""
    if not sys.platform.startswith("linux") or not all(os.path.exists(p) for p in paths):
        return None
    try:
        return _Inotify(paths)
    except (OSError, AttributeError):
        return None


class SqliteDataVersion:
    """`PRAGMA data_version` on a held connection: it moves when another connection commits.

    Most commits an idle leader sees are its own lease renewals (every lease_ttl / 3, on the
    lease thread's connection), which move data_version like any other. So a moved version is
    confirmed by the change sequence, read on the same connection: only a new sequence value
    counts as a change, and the beat sleeps on instead of ticking for its own writes.
    """

    def __init__(self, db: Database) -> None:
        path = db.url.database or ""
        self._safe_url = db.safe_url
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._version = self._read()
        except sqlite3.Error as error:
            raise StoreError(f"store {db.safe_url}: cannot watch for changes: {error}") from error
        try:
            self._seq = self.current_seq()
        except StoreError:
            self._conn.close()
            raise
        # The held connection keeps the WAL file in existence, so both can be watched now.
        self._inotify = _inotify([path, f"{path}-wal"])

    def _read(self) -> int:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def fileno(self) -> int | None:
        return self._inotify.fd if self._inotify is not None else None

    def changed(self) -> bool:
        woken = self._inotify is not None and self._inotify.drain()
        if self._inotify is not None and not woken:
            return False  # nothing written to the files since the last look
        try:
            version = self._read()
            if version == self._version and woken:
                # The last WAL write of a commit comes just before the WAL index says it
                # committed: look once more a moment later rather than miss it until the poll.
                time.sleep(_COMMIT_SETTLE_S)
                version = self._read()
        except sqlite3.Error as error:
            message = f"store {self._safe_url}: cannot watch for changes: {error}"
            raise StoreError(message) from error
        if version == self._version:
            return False
        self._version = version
        seq = self.current_seq()
        if seq == self._seq:
            return False  # another table (a lease renewal, a run): not the schedule
        self._seq = seq
        return True

    def current_seq(self) -> int:
        try:
            row = self._conn.execute(_CURRENT_SEQ).fetchone()
        except sqlite3.Error as error:
            message = f"store {self._safe_url}: cannot read the change sequence: {error}"
            raise StoreError(message) from error
        if row is None:
            raise StoreError(f"store {self._safe_url}: the change sequence row is missing")
        return int(row[0])

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
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
