"""The lease thread's own connection: each lease round, leader's or standby's, in one transaction.

A leading beat renews its lease every lease_ttl / 3 for as long as it runs, and reports its status
with it; a standby looks at the lease as often and reports its own. Through the pool that was two
or three transactions per round, each a checkout (with a pre-ping round trip on PostgreSQL, a
reset on return) plus a read of the database clock, about a millisecond of CPU taken cold every
few seconds: most of an idle beat's cost. Here a round is one transaction on one held connection,
driven through the DB-API driver without SQLAlchemy:

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg

from scheduling.errors import StoreError
from scheduling.store.database import SQLITE_BUSY_TIMEOUT_MS, Database
from scheduling.store.records import BeatStatus, LeaseRecord
from scheduling.store.schema import LEASE_NAME, sqlite_text

__all__ = ["LEASE_CONNECTION_NAME", "Renewal", "RenewalConnection"]

LEASE_CONNECTION_NAME = "periodic-beat-lease"
"""The application_name of the lease thread's PostgreSQL connection (see pg_stat_activity)."""
_CONNECT_TIMEOUT_S = 3
_T = TypeVar("_T")

_PG_NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"
_PG_RENEW = """
WITH renewed AS (
    UPDATE periodic_lease SET expires_at = {now} + make_interval(secs => $1::float8)
    WHERE name = $2::text AND holder = $3::text AND token = $4::bigint
    RETURNING token
), reported AS (
    INSERT INTO periodic_beats (beat_id, hostname, pid, role, last_tick, lag)
    SELECT $5::text, $6::text, $7::int,
           CASE WHEN EXISTS (SELECT FROM renewed) THEN 'leader' ELSE 'standby' END,
           NULLIF($8::text, '')::timestamp, NULLIF($9::text, '')::float8
    WHERE $10::boolean
    ON CONFLICT (beat_id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid,
        role = excluded.role, last_tick = excluded.last_tick, lag = excluded.lag
), forgotten AS (
    DELETE FROM periodic_beats
    WHERE $11::boolean AND EXISTS (SELECT FROM renewed)
      AND beat_id <> $5::text
      AND last_tick < {now} - make_interval(secs => $12::float8)
)
SELECT count(*) FROM renewed
"""
_PG_RENEW_ON_SERVER_CLOCK = (b"periodic_renew", _PG_RENEW.format(now=_PG_NOW).encode())
_PG_RENEW_AT = (b"periodic_renew_at", _PG_RENEW.format(now="$13::timestamp").encode())
"""(prepared statement name, SQL): run through libpq's own prepare and exec with text
parameters, a quarter of the CPU of a psycopg cursor when taken cold every few seconds."""

_PG_WATCH = """
WITH seen AS (
    SELECT holder, token, expires_at, acquired_at, {now} AS observed_at
    FROM periodic_lease WHERE name = $1::text
), held AS (
    SELECT * FROM seen WHERE holder <> '' AND holder <> $2::text AND expires_at > observed_at
), reported AS (
    INSERT INTO periodic_beats (beat_id, hostname, pid, role, last_tick, lag)
    SELECT $3::text, $4::text, $5::int, 'standby',
           NULLIF($6::text, '')::timestamp, NULLIF($7::text, '')::float8
    FROM held WHERE $8::boolean
    ON CONFLICT (beat_id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid,
        role = excluded.role, last_tick = excluded.last_tick, lag = excluded.lag
)
SELECT holder, token, to_char(expires_at, {iso}), to_char(acquired_at, {iso}),
       to_char(observed_at, {iso})
FROM held
"""
_PG_WATCH_ON_SERVER_CLOCK = (
    b"periodic_watch",
    _PG_WATCH.format(now=_PG_NOW, iso="'YYYY-MM-DD\"T\"HH24:MI:SS.US'").encode(),
)
"""A standby's round: the lease and the clock, and its status only if another beat holds the
lease live (no row: free, expired or ours, and nothing written). Timestamps come back as text
`datetime.fromisoformat` reads, whatever the session's DateStyle."""

_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now', ?) || '000'"
"""The store's clock plus a modifier (``'+10.000 seconds'``), laid out as UTCDateTime stores it
(SQLite's clock has milliseconds)."""
_SQLITE_RENEW = (
    "UPDATE periodic_lease SET expires_at = {expires} WHERE name = ? AND holder = ? AND token = ?"
)
_SQLITE_RENEW_ON_STORE_CLOCK = _SQLITE_RENEW.format(expires=_SQLITE_NOW)
_SQLITE_RENEW_AT = _SQLITE_RENEW.format(expires="?")
_SQLITE_REPORT = (
    "INSERT INTO periodic_beats (beat_id, hostname, pid, role, last_tick, lag) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (beat_id) DO UPDATE SET hostname = excluded.hostname, "
    "pid = excluded.pid, role = excluded.role, last_tick = excluded.last_tick, lag = excluded.lag"
)
_SQLITE_FORGET = "DELETE FROM periodic_beats WHERE beat_id <> ? AND last_tick < {cutoff}"
_SQLITE_FORGET_ON_STORE_CLOCK = _SQLITE_FORGET.format(cutoff=_SQLITE_NOW)
_SQLITE_FORGET_BEFORE = _SQLITE_FORGET.format(cutoff="?")
_SQLITE_WATCH = (
    "SELECT holder, token, expires_at, acquired_at, strftime('%Y-%m-%d %H:%M:%f', 'now') "
    "FROM periodic_lease WHERE name = ?"
)


@dataclass(frozen=True, slots=True)
class Renewal:
    """One round of a leading beat: renew (holder, token) for `ttl`, report `status` (its role
    decided by the renewal), and forget beats silent for `forget_after` if it renewed."""

    holder: str
    token: int
    ttl: timedelta
    status: BeatStatus | None = None
    forget_after: timedelta | None = None
    now: datetime | None = None
    """Pinned store clock (tests); None: the store's own clock, read in the statement."""


def _sqlite_modifier(value: timedelta) -> str:
    return f"{value.total_seconds():+.6f} seconds"


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
            return self._in_sqlite_transaction(lambda conn: _sqlite_renew(conn, renewal))

    def watch(self, holder: str, status: BeatStatus | None) -> LeaseRecord | None:
        """A standby's round: the lease if another beat holds it live (observed on the store's
        clock), with `status` recorded as "standby" in the same transaction; None, and nothing
        written, when it is free, expired or `holder`'s own. Raises StoreError on any fault."""
        with self._lock:
            if self._db.is_postgresql:
                return self._watch_postgresql(holder, status)
            return self._in_sqlite_transaction(lambda conn: _sqlite_watch(conn, holder, status))

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
            _pg_number(renewal.ttl.total_seconds()),
            LEASE_NAME.encode(),
            renewal.holder.encode(),
            _pg_number(renewal.token),
            *_pg_status(status),
            b"t" if forget is not None else b"f",
            _pg_number(forget.total_seconds() if forget is not None else 0.0),
        ]
        statement = _PG_RENEW_ON_SERVER_CLOCK
        if renewal.now is not None:
            statement = _PG_RENEW_AT
            params.append(_naive_utc(renewal.now).isoformat(sep=" ").encode())
        result = self._run_postgresql(statement, params)
        value = result.get_value(0, 0) if result.ntuples else None
        return value is not None and int(value) == 1

    def _watch_postgresql(self, holder: str, status: BeatStatus | None) -> LeaseRecord | None:
        params = [LEASE_NAME.encode(), holder.encode(), *_pg_status(status)]
        result = self._run_postgresql(_PG_WATCH_ON_SERVER_CLOCK, params)
        if not result.ntuples:
            return None
        values = [result.get_value(0, column) or b"" for column in range(5)]
        return LeaseRecord(
            holder=values[0].decode(),
            token=int(values[1]),
            expires_at=_aware_utc(values[2].decode()),
            acquired_at=_aware_utc(values[3].decode()),
            observed_at=_aware_utc(values[4].decode()),
        )

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


def _sqlite_renew(conn: sqlite3.Connection, renewal: Renewal) -> bool:
    key = (LEASE_NAME, renewal.holder, renewal.token)
    if renewal.now is None:
        expires = _sqlite_modifier(renewal.ttl)
        renewed = conn.execute(_SQLITE_RENEW_ON_STORE_CLOCK, (expires, *key)).rowcount
    else:
        until = sqlite_text(renewal.now + renewal.ttl)
        renewed = conn.execute(_SQLITE_RENEW_AT, (until, *key)).rowcount
    status = renewal.status
    if status is not None:
        role = "leader" if renewed == 1 else "standby"
        _sqlite_report(conn, status, role)
    if renewed == 1 and renewal.forget_after is not None:
        beat_id = status.beat_id if status is not None else ""
        if renewal.now is None:
            before = _sqlite_modifier(-renewal.forget_after)
            conn.execute(_SQLITE_FORGET_ON_STORE_CLOCK, (beat_id, before))
        else:
            cutoff = sqlite_text(renewal.now - renewal.forget_after)
            conn.execute(_SQLITE_FORGET_BEFORE, (beat_id, cutoff))
    return renewed == 1


def _sqlite_watch(
    conn: sqlite3.Connection, holder: str, status: BeatStatus | None
) -> LeaseRecord | None:
    row = conn.execute(_SQLITE_WATCH, (LEASE_NAME,)).fetchone()
    if row is None or row[0] in ("", holder):
        return None
    observed_at = _aware_utc(row[4])
    expires_at = _aware_utc(row[2])
    if expires_at <= observed_at:
        return None
    if status is not None:
        _sqlite_report(conn, status, "standby")
    return LeaseRecord(
        holder=row[0],
        token=int(row[1]),
        expires_at=expires_at,
        acquired_at=_aware_utc(row[3]),
        observed_at=observed_at,
    )


def _sqlite_report(conn: sqlite3.Connection, status: BeatStatus, role: str) -> None:
    values = (status.beat_id, status.hostname, status.pid, role)
    conn.execute(_SQLITE_REPORT, (*values, sqlite_text(status.last_tick), status.lag))


def _pg_status(status: BeatStatus | None) -> list[bytes]:
    """The status parameters of a round statement, and whether to record it ('' is NULL)."""
    if status is None:
        return [b"", b"", b"0", b"", b"", b"f"]
    return [
        status.beat_id.encode(),
        status.hostname.encode(),
        _pg_number(status.pid),
        _naive_utc(status.last_tick).isoformat(sep=" ").encode(),
        b"" if status.lag is None else _pg_number(status.lag),
        b"t",
    ]


def _pg_number(value: float) -> bytes:
    """A number as PostgreSQL's text input reads it (repr round-trips a float exactly)."""
    return repr(value).encode()


def _expect(pgconn: psycopg.pq.abc.PGconn, result: psycopg.pq.abc.PGresult, status: int) -> None:
    if result.status != status:
        message = (result.error_message or pgconn.error_message or b"").decode(errors="replace")
        raise psycopg.OperationalError(message.strip() or f"libpq result status {result.status}")


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware_utc(text: str) -> datetime:
    """A naive UTC timestamp as the store gives it back as text, as the aware UTC callers get."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
