"""The lease: one lease row with a fencing token, and the beats' self-reported status.

The token only grows. It moves on whenever a different holder takes the lease, so a beat that
was paused past its TTL and replaced finds its token stale at its next claim (`LeaseLost`)
instead of dispatching beside the new leader.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, update

from scheduling.store.database import Database, dialect_insert
from scheduling.store.lease_rounds import Renewal
from scheduling.store.records import BeatStatus, LeaseRecord, Role
from scheduling.store.renewal import RenewalConnection
from scheduling.store.schema import LEASE_NAME, UTCDateTime, beats, lease
from scheduling.store.terms import close_terms, open_term

_LEASE_COLUMNS = (lease.c.holder, lease.c.token, lease.c.expires_at, lease.c.acquired_at)


_RENEW = (
    update(lease)
    .where(
        lease.c.name == LEASE_NAME,
        lease.c.holder == bindparam("b_holder"),
        lease.c.token == bindparam("b_token"),
    )
    .values(expires_at=bindparam("b_expires", type_=UTCDateTime()))
)
"""Built once: the lease thread runs it every lease_ttl / 3 for the life of the beat."""


def _lease_from_row(row: Sequence[Any], observed_at: datetime | None = None) -> LeaseRecord:
    return LeaseRecord(
        holder=row[0],
        token=int(row[1]),
        expires_at=row[2],
        acquired_at=row[3],
        observed_at=observed_at,
    )


def database_now(conn: Connection) -> datetime:
    """The database server's clock (aware UTC): the one clock every beat shares.

    Lease expiry is written and compared on it, so a beat whose host clock runs fast can
    neither take a live lease early nor lose its own; failover time does not depend on skew.
    (SQLite is a local file: its clock is the host's, which every process using it shares.)
    """
    if conn.dialect.name == "postgresql":
        value = conn.execute(select(func.clock_timestamp())).scalar_one()
        return value.astimezone(UTC)  # type: ignore[no-any-return]
    text_value = conn.execute(select(func.strftime("%Y-%m-%d %H:%M:%f", "now"))).scalar_one()
    return datetime.fromisoformat(str(text_value)).replace(tzinfo=UTC)


def _status_values(status: BeatStatus, role: Role) -> dict[str, Any]:
    return {
        "beat_id": status.beat_id,
        "hostname": status.hostname,
        "pid": status.pid,
        "role": role,
        "last_tick": status.last_tick,
        "lag": status.lag,
    }


class LeaseOperations:
    """Lease and beat status; mixed into `Store`, which provides `_db`."""

    _db: Database
    _renewals: RenewalConnection

    def _locked_lease(self, conn: Connection) -> LeaseRecord:
        statement = select(*_LEASE_COLUMNS).where(lease.c.name == LEASE_NAME)
        if self._db.is_postgresql:
            statement = statement.with_for_update()
        return _lease_from_row(conn.execute(statement).one())

    def acquire_lease(
        self, holder: str, ttl: timedelta, now: datetime | None = None
    ) -> LeaseRecord | None:
        """Take the lease if it is free, expired or already ours; None if another beat holds it.

        A new holder gets token + 1; the same holder keeps its token (renewal), even after its
        lease lapsed, because nobody else can have claimed with that token in between. `now`
        defaults to the database's clock (`database_now`); tests may pin it.
        """
        if not holder:
            raise ValueError("a lease holder needs a non-empty id")
        with self._db.write() as conn:
            current = self._locked_lease(conn)
            now = now or database_now(conn)
            if current.holder == holder:
                token, acquired_at = current.token, current.acquired_at
            elif current.holder and current.expires_at > now:
                return None
            else:
                token, acquired_at = current.token + 1, now
            if current.holder != holder or current.expires_at <= now:
                open_term(conn, holder, token, now, lapsed_at=min(current.expires_at, now))
            conn.execute(
                update(lease)
                .where(lease.c.name == LEASE_NAME)
                .values(holder=holder, token=token, expires_at=now + ttl, acquired_at=acquired_at)
            )
        return LeaseRecord(
            holder=holder,
            token=token,
            expires_at=now + ttl,
            acquired_at=acquired_at,
            observed_at=now,
        )

    def renew_lease(
        self,
        holder: str,
        token: int,
        ttl: timedelta,
        now: datetime | None = None,
        *,
        status: BeatStatus | None = None,
        forget_after: timedelta | None = None,
    ) -> bool:
        """Extend our lease; False if another holder took it (or the token moved on).

        In the same transaction, `status` is recorded (role "leader" only if the renewal went
        through, else "standby") and, if it did, beats silent for `forget_after` are pruned.
        Runs on the lease thread's held connection (`scheduling.store.renewal`), expiry on the
        store's clock unless `now` pins it (tests).
        """
        renewal = Renewal(holder, token, ttl, status, forget_after, now)
        if self._renewals.usable:
            return self._renewals.renew(renewal)
        with self._db.write() as conn:
            now = now or database_now(conn)
            result = conn.execute(
                _RENEW, {"b_holder": holder, "b_token": token, "b_expires": now + ttl}
            )
            renewed = result.rowcount == 1
            if renewed and forget_after is not None:
                self._forget_beats(conn, now - forget_after)
            if status is not None:
                role: Role = "leader" if renewed else "standby"
                conn.execute(self._record_beat_statement(), _status_values(status, role))
            return renewed

    def watch_lease(self, holder: str, *, status: BeatStatus | None = None) -> LeaseRecord | None:
        """A standby's round: the lease if another beat holds it live, with `status` recorded
        (role "standby") in the same transaction; None, and nothing written, when the lease is
        free, expired or `holder`'s own, for the caller to take it with `acquire_lease`.

        Liveness is judged on the store's clock, which the record carries as `observed_at`. One
        transaction on the lease thread's held connection (`scheduling.store.renewal`) instead of
        a failed take-over, a read and a status write through the pool every round.
        """
        if self._renewals.usable:
            return self._renewals.watch(holder, status)
        with self._db.write() as conn:
            row = conn.execute(select(*_LEASE_COLUMNS).where(lease.c.name == LEASE_NAME)).one()
            now = database_now(conn)
            current = _lease_from_row(row, now)
            if current.holder in ("", holder) or not current.live(now):
                return None
            if status is not None:
                conn.execute(self._record_beat_statement(), _status_values(status, "standby"))
        return current

    def release_lease(self, holder: str, token: int) -> None:
        """Give the lease up at once (clean shutdown) so a standby need not wait out the TTL."""
        with self._db.write() as conn:
            released = conn.execute(
                update(lease)
                .where(lease.c.name == LEASE_NAME, lease.c.holder == holder, lease.c.token == token)
                .values(holder="")
            )
            if released.rowcount:
                close_terms(conn, datetime.now(UTC), holder=holder)

    def current_lease(self) -> LeaseRecord | None:
        """The lease as stored (it may have expired; `LeaseRecord.live` says, on the database's
        clock); None when nobody holds it."""
        with self._db.read() as conn:
            row = conn.execute(select(*_LEASE_COLUMNS).where(lease.c.name == LEASE_NAME)).one()
            observed_at = database_now(conn)
        record = _lease_from_row(row, observed_at)
        return record if record.holder else None

    def prune_beats(self, older_than: timedelta) -> int:
        """Forget beats whose last status is older than `older_than` on the database's clock."""
        with self._db.write() as conn:
            return self._forget_beats(conn, database_now(conn) - older_than)

    def _forget_beats(self, conn: Connection, cutoff: datetime) -> int:
        result = conn.execute(delete(beats).where(beats.c.last_tick < cutoff))
        return int(result.rowcount or 0)

    def record_beat(self, status: BeatStatus) -> None:
        """Upsert this beat's status row (a standby's lease round; a leader's goes with its
        renewal, see `renew_lease`)."""
        with self._db.write() as conn:
            conn.execute(self._record_beat_statement(), _status_values(status, status.role))

    def _record_beat_statement(self) -> Any:
        # Built once per store: the lease thread writes it every lease_ttl / 3, forever.
        statement = getattr(self, "_record_beat_cached", None)
        if statement is None:
            insert = dialect_insert(self._db, beats)
            statement = insert.on_conflict_do_update(
                index_elements=[beats.c.beat_id],
                set_={
                    column: insert.excluded[column]
                    for column in ("hostname", "pid", "role", "last_tick", "lag")
                },
            )
            self._record_beat_cached = statement
        return statement

    def beats(self) -> list[BeatStatus]:
        """Every beat that ever reported, by id; callers judge liveness from last_tick."""
        with self._db.read() as conn:
            rows = conn.execute(select(beats).order_by(beats.c.beat_id)).all()
        result = []
        for row in rows:
            role: Role = "leader" if row.role == "leader" else "standby"
            result.append(
                BeatStatus(
                    beat_id=row.beat_id,
                    hostname=row.hostname,
                    pid=row.pid,
                    role=role,
                    last_tick=row.last_tick,
                    lag=row.lag,
                )
            )
        return result
