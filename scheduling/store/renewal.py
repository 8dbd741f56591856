"""The lease thread's own connection: each lease round, leader's or standby's, in one transaction.

A leading beat renews its lease every lease_ttl / 3 for as long as it runs, and reports its status
with it; a standby looks at the lease as often and reports its own. Through the pool that was two
or three transactions per round, each a checkout (with a pre-ping round trip on PostgreSQL, a
reset on return) plus a read of the database clock, about a millisecond of CPU taken cold every
few seconds: most of an idle beat's cost. Here a round is one transaction on one held connection,
driven through the DB-API driver without SQLAlchemy (the statements are in
`scheduling.store.lease_rounds`):

* PostgreSQL: one autocommit statement (data-modifying CTEs) prepared once per connection and
  run through libpq's own exec with text parameters: one round trip per round, no pre-ping: a
  connection found dropped is replaced and the (idempotent) statement run once more on the new
  one; a fault beyond that is a `StoreError`, as any store fault, and the next round connects
  again;
* SQLite: ``BEGIN IMMEDIATE``, the statements, ``COMMIT`` on a held ``sqlite3`` connection set
  up like the pool's (busy timeout, ``synchronous = NORMAL``).

Expiry is computed in SQL on the store's clock (PostgreSQL ``clock_timestamp()``, SQLite
``'now'``), as `database_now` does for the pooled operations, so no separate clock read is needed
and a skewed host clock still cannot move the lease. The status row says "leader" only when the
renewal in the same transaction succeeded.

A standby's round (`RenewalConnection.watch`) reads the lease with the store's clock and, only if
another beat holds it live, records the standby's status; it never takes the lease. A lease that
is free, expired or already ours is left as it is for the pooled `acquire_lease`, which takes it
with the term bookkeeping: that happens once per take-over, not every round. In-memory SQLite
stores have no second connection: `RenewalConnection.usable` is False and the caller uses the
pool.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from scheduling.errors import StoreError
from scheduling.store.database import SQLITE_BUSY_TIMEOUT_MS, Database
from scheduling.store.lease_rounds import (
    PG_RENEW_AT,
    PG_RENEW_ON_SERVER_CLOCK,
    PG_WATCH_ON_SERVER_CLOCK,
    Renewal,
    naive_utc,
    pg_number,
    pg_status,
    pg_watched,
    sqlite_renew,
    sqlite_watch,
)
from scheduling.store.records import BeatStatus, LeaseRecord
from scheduling.store.schema import LEASE_NAME

__all__ = ["LEASE_CONNECTION_NAME", "RenewalConnection"]

LEASE_CONNECTION_NAME = "periodic-beat-lease"
"""The application_name of the lease thread's PostgreSQL connection (see pg_stat_activity)."""
_CONNECT_TIMEOUT_S = 3
_T = TypeVar("_T")


class RenewalConnection:
    """A held connection for `Renewal`s, opened on first use and after a fault (thread-safe)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._pg: psycopg.Connection[Any] | None = None
        self._prepared: set[bytes] = set()
        """Statements prepared on the current PostgreSQL connection."""
        self._sqlite: sqlite3.Connection | None = None
        database = db.url.database
        self.usable = db.is_postgresql or not (
            database in (None, "", ":memory:") or str(database).startswith("file:")
        )
        """False for in-memory SQLite: only the pool's connection sees that database."""

    def renew(self, renewal: Renewal) -> bool:
        """Run one round; True if the lease was renewed. Raises StoreError on any fault."""
        with self._lock:
            if self._db.is_postgresql:
                return self._renew_postgresql(renewal)
            return self._in_sqlite_transaction(lambda conn: sqlite_renew(conn, renewal))

    def watch(self, holder: str, status: BeatStatus | None) -> LeaseRecord | None:
        """A standby's round: the lease if another beat holds it live (observed on the store's
        clock), with `status` recorded as "standby" in the same transaction; None, and nothing
        written, when it is free, expired or `holder`'s own. Raises StoreError on any fault."""
        with self._lock:
            if self._db.is_postgresql:
                return self._watch_postgresql(holder, status)
            return self._in_sqlite_transaction(lambda conn: sqlite_watch(conn, holder, status))

    def close(self) -> None:
        with self._lock:
            pg, self._pg = self._pg, None
            lite, self._sqlite = self._sqlite, None
        if pg is not None:
            pg.close()
        if lite is not None:
            lite.close()

    def _fault(self, error: Exception) -> StoreError:
        lines = str(error).strip().splitlines()
        first = lines[0] if lines else type(error).__name__
        return StoreError(f"store {self._db.safe_url}: {first}")

    # --- PostgreSQL ------------------------------------------------------------------

    def _postgresql(self) -> psycopg.Connection[Any]:
        if self._pg is None or self._pg.closed:
            cargs, cparams = self._db.engine.dialect.create_connect_args(self._db.url)
            cparams.pop("context", None)
            cparams.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
            cparams.setdefault("application_name", LEASE_CONNECTION_NAME)
            self._pg = psycopg.connect(*cargs, **cparams, autocommit=True)
            self._prepared = set()
        return self._pg

    def _renew_postgresql(self, renewal: Renewal) -> bool:
        status = renewal.status
        forget = renewal.forget_after
        params = [
            pg_number(renewal.ttl.total_seconds()),
            LEASE_NAME.encode(),
            renewal.holder.encode(),
            pg_number(renewal.token),
            *pg_status(status),
            b"t" if forget is not None else b"f",
            pg_number(forget.total_seconds() if forget is not None else 0.0),
        ]
        statement = PG_RENEW_ON_SERVER_CLOCK
        if renewal.now is not None:
            statement = PG_RENEW_AT
            params.append(naive_utc(renewal.now).isoformat(sep=" ").encode())
        result = self._run_postgresql(statement, params)
        value = result.get_value(0, 0) if result.ntuples else None
        return value is not None and int(value) == 1

    def _watch_postgresql(self, holder: str, status: BeatStatus | None) -> LeaseRecord | None:
        params = [LEASE_NAME.encode(), holder.encode(), *pg_status(status)]
        result = self._run_postgresql(PG_WATCH_ON_SERVER_CLOCK, params)
        if not result.ntuples:
            return None
        return pg_watched([result.get_value(0, column) or b"" for column in range(5)])

    def _run_postgresql(
        self, statement: tuple[bytes, bytes], params: list[bytes]
    ) -> psycopg.pq.abc.PGresult:
        """Run an idempotent round statement, once more on a new connection if the held one
        was found dropped."""
        reused = self._pg is not None
        try:
            try:
                return self._exec_prepared(statement, params)
            except psycopg.OperationalError:
                if not reused or not self._drop_broken():
                    raise
                # What a pre-ping would have found (a restarted server, a proxy's idle cut):
                # the statement is idempotent, so one retry on a new connection is safe.
                return self._exec_prepared(statement, params)
        except psycopg.Error as error:
            # Whatever failed (the server, a prepared statement a proxy dropped), the next round
            # starts afresh: a connection and its statements.
            if self._pg is not None:
                self._pg.close()
                self._pg = None
            raise self._fault(error) from error

    def _exec_prepared(
        self, statement: tuple[bytes, bytes], params: list[bytes]
    ) -> psycopg.pq.abc.PGresult:
        """Run a round statement; its rows. A failed one raises OperationalError."""
        pgconn = self._postgresql().pgconn
        name, sql = statement
        if name not in self._prepared:
            _expect(pgconn, pgconn.prepare(name, sql), psycopg.pq.ExecStatus.COMMAND_OK)
            self._prepared.add(name)
        result = pgconn.exec_prepared(name, params)
        _expect(pgconn, result, psycopg.pq.ExecStatus.TUPLES_OK)
        return result

    def _drop_broken(self) -> bool:
        """Forget a connection that can no longer be used; whether there was one."""
        conn = self._pg
        if conn is None:
            return False
        if not (conn.closed or conn.broken or conn.pgconn.status == psycopg.pq.ConnStatus.BAD):
            return False
        conn.close()
        self._pg = None
        return True

    # --- SQLite ----------------------------------------------------------------------

    def _sqlite_connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            conn = sqlite3.connect(
                self._db.url.database or "",
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._sqlite = conn
        return self._sqlite

    def _in_sqlite_transaction(self, statements: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            conn = self._sqlite_connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = statements(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise self._fault(error) from error
        return result


def _expect(pgconn: psycopg.pq.abc.PGconn, result: psycopg.pq.abc.PGresult, status: int) -> None:
    if result.status != status:
        message = (result.error_message or pgconn.error_message or b"").decode(errors="replace")
        raise psycopg.OperationalError(message.strip() or f"libpq result status {result.status}")
