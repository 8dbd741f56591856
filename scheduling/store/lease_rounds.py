"""What one lease round says to the store: its statements, their parameters and their rows.

The lease thread runs these on its own held connection (`scheduling.store.renewal`): a leader's
round (`Renewal`: renew, report, forget the silent) and a standby's look (the lease if another
beat holds it live, with the standby's status). PostgreSQL gets each as one statement of
data-modifying CTEs, prepared once per connection and run with text parameters; SQLite as a few
statements inside the caller's ``BEGIN IMMEDIATE`` transaction. Times are computed in SQL on the
store's clock unless a test pins `Renewal.now`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scheduling.store.records import BeatStatus, LeaseRecord
from scheduling.store.schema import LEASE_NAME, sqlite_text

__all__ = [
    "PG_RENEW_AT",
    "PG_RENEW_ON_SERVER_CLOCK",
    "PG_WATCH_ON_SERVER_CLOCK",
    "Renewal",
    "naive_utc",
    "pg_number",
    "pg_status",
    "pg_watched",
    "sqlite_renew",
    "sqlite_watch",
]

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
PG_RENEW_ON_SERVER_CLOCK = (b"periodic_renew", _PG_RENEW.format(now=_PG_NOW).encode())
PG_RENEW_AT = (b"periodic_renew_at", _PG_RENEW.format(now="$13::timestamp").encode())
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
PG_WATCH_ON_SERVER_CLOCK = (
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


def sqlite_renew(conn: sqlite3.Connection, renewal: Renewal) -> bool:
    """A leader's round inside the caller's transaction; True if the lease was renewed."""
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


def sqlite_watch(
    conn: sqlite3.Connection, holder: str, status: BeatStatus | None
) -> LeaseRecord | None:
    """A standby's look inside the caller's transaction (see `RenewalConnection.watch`)."""
    row = conn.execute(_SQLITE_WATCH, (LEASE_NAME,)).fetchone()
    if row is None or row[0] in ("", holder):
        return None
    observed_at = aware_utc(row[4])
    expires_at = aware_utc(row[2])
    if expires_at <= observed_at:
        return None
    if status is not None:
        _sqlite_report(conn, status, "standby")
    return LeaseRecord(
        holder=row[0],
        token=int(row[1]),
        expires_at=expires_at,
        acquired_at=aware_utc(row[3]),
        observed_at=observed_at,
    )


def _sqlite_report(conn: sqlite3.Connection, status: BeatStatus, role: str) -> None:
    values = (status.beat_id, status.hostname, status.pid, role)
    conn.execute(_SQLITE_REPORT, (*values, sqlite_text(status.last_tick), status.lag))


def pg_status(status: BeatStatus | None) -> list[bytes]:
    """The status parameters of a round statement, and whether to record it ('' is NULL)."""
    if status is None:
        return [b"", b"", b"0", b"", b"", b"f"]
    return [
        status.beat_id.encode(),
        status.hostname.encode(),
        pg_number(status.pid),
        naive_utc(status.last_tick).isoformat(sep=" ").encode(),
        b"" if status.lag is None else pg_number(status.lag),
        b"t",
    ]


def pg_number(value: float) -> bytes:
    """A number as PostgreSQL's text input reads it (repr round-trips a float exactly)."""
    return repr(value).encode()


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def aware_utc(text: str) -> datetime:
    """A naive UTC timestamp as the store gives it back as text, as the aware UTC callers get."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pg_watched(values: list[bytes]) -> LeaseRecord:
    """The lease a standby's PostgreSQL look returned (its one row, as text)."""
    return LeaseRecord(
        holder=values[0].decode(),
        token=int(values[1]),
        expires_at=aware_utc(values[2].decode()),
        acquired_at=aware_utc(values[3].decode()),
        observed_at=aware_utc(values[4].decode()),
    )
