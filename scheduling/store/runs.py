"""The run ledger after the claim: dispatch confirmations, worker reports, history, retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, case, delete, func, select, update
from sqlalchemy.sql.expression import bindparam

from scheduling.store.database import Database, dialect_insert, name_in
from scheduling.store.history import HistoryRow, write_history
from scheduling.store.records import (
    FINISHED_STATES,
    LEDGER_ONLY_STATES,
    UNFINISHED_STATES,
    RunRecord,
    RunState,
)
from scheduling.store.rows import RUN_COLUMNS, chunks, run_by_task_id, run_from_row
from scheduling.store.schema import deliveries, runs

_FINISHED = sorted(state.value for state in FINISHED_STATES)
_UNFINISHED = sorted(state.value for state in UNFINISHED_STATES)
_LEDGER_ONLY = sorted(state.value for state in LEDGER_ONLY_STATES)


def _newest_id(entry: str, *, dispatched_only: bool) -> Any:
    """The id of `entry`'s newest run (optionally: the newest that was dispatched)."""
    statement = select(runs.c.id).where(runs.c.entry == entry)
    if dispatched_only:
        statement = statement.where(runs.c.state.not_in(_LEDGER_ONLY))
    return statement.order_by(runs.c.id.desc()).limit(1).scalar_subquery()


def mark_dispatched_in(
    conn: Connection, db: Database, task_ids: Sequence[str], at: datetime
) -> None:
    """`RunLedger.mark_dispatched` inside the caller's transaction (beat's next claim)."""
    statement = (
        update(runs)
        .where(name_in(db, runs.c.task_id, bindparam("b_ids", expanding=True)))
        .where(runs.c.dispatched_at.is_(None))
        .where(runs.c.state.not_in([state.value for state in LEDGER_ONLY_STATES]))
        .values(
            dispatched_at=at,
            state=case(
                (runs.c.state == RunState.PENDING.value, RunState.DISPATCHED.value),
                else_=runs.c.state,
            ),
        )
    )
    for part in chunks(task_ids):
        conn.execute(statement, {"b_ids": list(part)})


class RunLedger:
    """Ledger reads and writes; mixed into `Store`, which provides `_db`."""

    _db: Database

    def mark_dispatched(
        self, task_ids: Sequence[str], at: datetime, history: Sequence[HistoryRow] = ()
    ) -> None:
        """The broker confirmed these: PENDING -> DISPATCHED (a worker may already be faster).

        `history` is written in the same transaction: the run-now requests of a batch record
        who started them without one more write transaction each.
        """
        with self._db.write() as conn:
            mark_dispatched_in(conn, self._db, task_ids, at)
            write_history(conn, history, at)

    def pending_runs(
        self,
        *,
        older_than: datetime | None = None,
        limit: int = 1000,
        after_id: int | None = None,
    ) -> list[RunRecord]:
        """Claimed but unconfirmed runs, oldest first: to republish with the same task id.

        Pass the last `id` of a page as `after_id` for the next one, so rows that stay pending
        (awaiting a retry) never hide the rows behind them.
        """
        statement = (
            select(*RUN_COLUMNS)
            .where(runs.c.state == RunState.PENDING.value)
            .order_by(runs.c.id)
            .limit(limit)
        )
        if older_than is not None:
            statement = statement.where(runs.c.claimed_at < older_than)
        if after_id is not None:
            statement = statement.where(runs.c.id > after_id)
        return self._select_runs(statement)

    def note_refused_delivery(self, task_id: str, note: str, at: datetime) -> None:
        """A worker acknowledged a message of this run without running it: say so on the run.

        A finished run keeps its state and gains the note; an unfinished one (its entry was
        deleted) is closed as revoked with it.
        """
        with self._db.write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.task_id == task_id, runs.c.state.in_(_FINISHED))
                .values(error_message=func.coalesce(runs.c.error_message + "; ", "") + note)
            )
            conn.execute(
                update(runs)
                .where(runs.c.task_id == task_id, runs.c.state.not_in(_FINISHED))
                .values(
                    state=RunState.REVOKED.value,
                    finished_at=at,
                    error_type="EntryDeleted",
                    error_message=note,
                )
            )

    def has_unfinished_run(self, entry: str) -> bool:
        statement = (
            select(runs.c.id).where(runs.c.entry == entry, runs.c.state.in_(_UNFINISHED)).limit(1)
        )
        with self._db.read() as conn:
            return conn.execute(statement).first() is not None

    def record_run_started(self, task_id: str, hostname: str, at: datetime) -> RunRecord | None:
        """A worker began the run. None for a task id Periodic did not send; a finished run
        stays finished (a late or redelivered start never moves it back)."""
        with self._db.write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.task_id == task_id, runs.c.state.not_in(_FINISHED))
                .values(state=RunState.STARTED.value, started_at=at, hostname=hostname)
            )
            return run_by_task_id(conn, task_id)

    def record_run_retry(
        self, task_id: str, error_type: str, error_message: str, at: datetime
    ) -> None:
        """The task asked to be retried; `at` is accepted for symmetry and not stored."""
        del at
        with self._db.write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.task_id == task_id, runs.c.state.not_in(_FINISHED))
                .values(
                    state=RunState.RETRY.value,
                    retries=runs.c.retries + 1,
                    error_type=error_type,
                    error_message=error_message,
                )
            )

    def record_run_finished(
        self,
        task_id: str,
        state: RunState,
        at: datetime,
        *,
        runtime: float | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """Close a run with a finished state; the first finish wins, later ones are ignored.

        Without `runtime`, it is computed from started_at when the start was recorded.
        """
        if state not in FINISHED_STATES:
            raise ValueError(f"{state.value!r} is not a finished state")
        with self._db.write() as conn:
            run = run_by_task_id(conn, task_id)
            if run is None or run.finished:
                return
            if runtime is None and run.started_at is not None:
                runtime = max((at - run.started_at).total_seconds(), 0.0)
            conn.execute(
                update(runs)
                .where(runs.c.id == run.id, runs.c.state.not_in(_FINISHED))
                .values(
                    state=state.value,
                    finished_at=at,
                    runtime=runtime,
                    error_type=error_type,
                    error_message=error_message,
                )
            )

    def _select_runs(self, statement: Any) -> list[RunRecord]:
        with self._db.read() as conn:
            return [run_from_row(row) for row in conn.execute(statement)]

    def get_run(self, task_id: str) -> RunRecord | None:
        with self._db.read() as conn:
            return run_by_task_id(conn, task_id)

    def runs_for_entry(
        self, entry: str, *, before_id: int | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Newest first; pass the last id of a page as `before_id` for the next one."""
        statement = (
            select(*RUN_COLUMNS)
            .where(runs.c.entry == entry)
            .order_by(runs.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            statement = statement.where(runs.c.id < before_id)
        return self._select_runs(statement)

    def recent_runs(self, *, limit: int = 50) -> list[RunRecord]:
        return self._select_runs(select(*RUN_COLUMNS).order_by(runs.c.id.desc()).limit(limit))

    def latest_runs(self, names: Sequence[str]) -> dict[str, tuple[RunRecord, RunRecord | None]]:
        """Per entry that has runs: (its newest run, its newest run that was dispatched).

        What a schedule's view shows (`last_run` and whether the newest slot was missed) for a
        whole page of entries in one query, instead of two per entry.
        """
        found: dict[str, tuple[RunRecord, RunRecord | None]] = {}
        for part in chunks(sorted(set(names))):
            # Each "newest id" walks the (entry, id DESC) index and stops at its first match,
            # however long the entry's history (max(id) ... GROUP BY entry reads all of it).
            ids = [
                _newest_id(name, dispatched_only=only) for name in part for only in (False, True)
            ]
            statement = select(*RUN_COLUMNS).where(runs.c.id.in_(ids))
            # Ascending ids: the last row seen of an entry is its newest run.
            for run in sorted(self._select_runs(statement), key=lambda r: r.id):
                last = found[run.entry][1] if run.entry in found else None
                if run.state not in LEDGER_ONLY_STATES:
                    last = run
                found[run.entry] = (run, last)
        return found

    def last_run(self, entry: str) -> RunRecord | None:
        """The newest run that was (or is being) dispatched: missed and skipped slots excluded."""
        statement = (
            select(*RUN_COLUMNS)
            .where(
                runs.c.entry == entry,
                runs.c.state.not_in([state.value for state in LEDGER_ONLY_STATES]),
            )
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        found = self._select_runs(statement)
        return found[0] if found else None

    def runs_between(self, start: datetime, end: datetime) -> list[RunRecord]:
        """Runs whose slot lies in [start, end), by slot time (reports)."""
        statement = (
            select(*RUN_COLUMNS)
            .where(runs.c.scheduled_for >= start, runs.c.scheduled_for < end)
            .order_by(runs.c.scheduled_for, runs.c.id)
        )
        return self._select_runs(statement)

    def purge_runs(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        """Delete finished runs that finished before `older_than`, one short transaction per
        batch so beat and workers are never blocked for long. Returns how many were deleted.
        Delivery counters last touched before `older_than` go too."""
        purged = 0
        while True:
            with self._db.write() as conn:
                ids = list(
                    conn.execute(
                        select(runs.c.id)
                        .where(runs.c.finished_at < older_than, runs.c.state.in_(_FINISHED))
                        .order_by(runs.c.id)
                        .limit(batch_size)
                    ).scalars()
                )
                if ids:
                    conn.execute(delete(runs).where(runs.c.id.in_(ids)))
            purged += len(ids)
            if len(ids) < batch_size:
                break
        with self._db.write() as conn:
            conn.execute(delete(deliveries).where(deliveries.c.last_at < older_than))
        return purged

    def count_runs(self, *, state: RunState | None = None) -> int:
        statement = select(func.count()).select_from(runs)
        if state is not None:
            statement = statement.where(runs.c.state == state.value)
        with self._db.read() as conn:
            return int(conn.execute(statement).scalar_one())

    def record_delivery(self, task_id: str) -> int:
        """Count one more delivery of `task_id` to a worker and return the total so far."""
        now = datetime.now(UTC)
        statement = dialect_insert(self._db, deliveries).values(
            task_id=task_id, count=1, last_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[deliveries.c.task_id],
            set_={"count": deliveries.c.count + 1, "last_at": statement.excluded.last_at},
        )
        with self._db.write() as conn:
            return int(conn.execute(statement.returning(deliveries.c.count)).scalar_one())
