"""Claiming slots: the outbox step that makes dispatch exactly-once.

The unique slot key (entry, scheduled_for, manual) decides: a slot can be inserted once,
whoever tries, and `claim_slots` returns only the rows it inserted itself. Every claim is
fenced by the lease token, so a deposed leader cannot claim beside its successor.

A claim commits durably on PostgreSQL (``synchronous_commit`` stays on), although it is the
commit beat waits for once per chunk of a burst. With it off, a server crash could lose a claim
whose messages were already published: the next leader would claim the slot again, under the
same task id, and publish it a second time, which a worker cannot tell from the first (its run
row is gone), so the slot would run twice. Beat instead saves the second commit per chunk: the
marks of earlier chunks ride along with the next claim (`claim_slots(dispatched=...)`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, literal, or_, select, update
from sqlalchemy.sql.expression import bindparam

from scheduling.errors import EntryNotFound, LeaseLost, StoreError
from scheduling.store.database import Database, name_in
from scheduling.store.lease import database_now
from scheduling.store.records import LEDGER_ONLY_STATES, ManualRun, RunRecord, RunState, SlotClaim
from scheduling.store.rows import RUN_COLUMNS, chunks, run_from_row
from scheduling.store.runs import mark_dispatched_in
from scheduling.store.schema import LEASE_NAME, UTCDateTime, entries, lease, runs, sqlite_text
from scheduling.timing.timetables import as_utc

_MANUAL_SLOT_ATTEMPTS = 1000
_MICROSECOND = timedelta(microseconds=1)
_POSTGRESQL_INSERT_RUNS = (
    # One short statement with one array per column, whatever the number of rows: the driver
    # parses and the server plans it once, where a multi-row VALUES list is a new statement of
    # 9 x N parameters each time.
    "INSERT INTO periodic_runs "
    "(entry, scheduled_for, task_id, state, manual, queue, claimed_at, finished_at, retries) "
    "SELECT entry, scheduled_for, task_id, state, manual, queue, claimed_at, finished_at, 0 "
    "FROM unnest(%(entry)s::varchar[], %(scheduled_for)s::timestamp[], %(task_id)s::varchar[], "
    "%(state)s::varchar[], %(manual)s::boolean[], %(queue)s::varchar[], "
    "%(claimed_at)s::timestamp[], %(finished_at)s::timestamp[]) "
    "AS slot(entry, scheduled_for, task_id, state, manual, queue, claimed_at, finished_at) "
    "ON CONFLICT DO NOTHING RETURNING id, task_id"
)
_SQLITE_INSERT_RUN = (
    "INSERT OR IGNORE INTO periodic_runs "
    "(entry, scheduled_for, task_id, state, manual, queue, claimed_at, finished_at, retries) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


_UNNESTED = (
    "entry",
    "scheduled_for",
    "task_id",
    "state",
    "manual",
    "queue",
    "claimed_at",
    "finished_at",
)


def _claim_params(claim: SlotClaim, claimed_at: datetime) -> dict[str, Any]:
    return {
        "entry": claim.entry,
        "scheduled_for": as_utc(claim.scheduled_for),
        "task_id": claim.task_id,
        "state": claim.state.value,
        "manual": claim.manual,
        "queue": claim.queue,
        "claimed_at": claimed_at,
        # Missed and skipped slots are finished when recorded, so retention purges them too.
        "finished_at": claimed_at if claim.state in LEDGER_ONLY_STATES else None,
        "retries": 0,
    }


def _run_from_params(row_id: int, values: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        id=row_id,
        entry=values["entry"],
        scheduled_for=values["scheduled_for"],
        task_id=values["task_id"],
        state=RunState(values["state"]),
        manual=values["manual"],
        queue=values["queue"],
        claimed_at=values["claimed_at"],
        dispatched_at=None,
        started_at=None,
        finished_at=values["finished_at"],
        runtime=None,
        hostname=None,
        error_type=None,
        error_message=None,
        retries=0,
    )


class SlotClaims:
    """Claims; mixed into `Store`, which provides `_db`."""

    _db: Database

    def _check_lease(self, conn: Connection, holder: str, token: int, now: datetime | None) -> None:
        statement = select(lease.c.holder, lease.c.token, lease.c.expires_at).where(
            lease.c.name == LEASE_NAME
        )
        if self._db.is_postgresql:
            statement = statement.with_for_update()
        row = conn.execute(statement).one_or_none()
        if row is None or row.holder != holder or row.token != token:
            current = "nobody" if row is None or not row.holder else f"{row.holder!r}"
            raise LeaseLost(
                f"beat {holder!r} with token {token} no longer holds the lease "
                f"(held by {current}, token {row.token if row else 0})"
            )
        # Expiry is judged on the database's clock, which wrote it (`database_now`).
        if now is not None and row.expires_at <= database_now(conn):
            raise LeaseLost(f"the lease of beat {holder!r} expired at {row.expires_at.isoformat()}")

    def _insert_runs(
        self, conn: Connection, params: Sequence[dict[str, Any]], *, new_task_ids: bool = False
    ) -> list[RunRecord]:
        """Insert what is not claimed yet; records of the inserted rows, in `params` order.

        Only (id, task_id) come back from the database: the rest is what was just written,
        which keeps a 10k-slot claim free of per-column result processing. `new_task_ids`:
        the caller already looked the task ids up in this transaction (none is in the ledger).
        """
        if self._db.is_postgresql:
            ids = self._insert_runs_postgresql(conn, params)
        else:
            ids = self._insert_runs_sqlite(conn, params, check_task_ids=not new_task_ids)
        inserted = []
        for values in params:
            row_id = ids.pop(values["task_id"], None)
            if row_id is not None:
                inserted.append(_run_from_params(row_id, values))
        return inserted

    @staticmethod
    def _insert_runs_postgresql(
        conn: Connection, params: Sequence[dict[str, Any]]
    ) -> dict[str, int]:
        # Concurrent claimers are real here: ON CONFLICT decides, RETURNING tells who won.
        ids: dict[str, int] = {}
        for part in chunks(params):
            columns: dict[str, list[Any]] = {name: [] for name in _UNNESTED}
            for values in part:
                for name in _UNNESTED:
                    value = values[name]
                    # The columns hold naive UTC (see `UTCDateTime`).
                    columns[name].append(
                        value.replace(tzinfo=None) if isinstance(value, datetime) else value
                    )
            found = conn.exec_driver_sql(_POSTGRESQL_INSERT_RUNS, columns)
            ids.update((task_id, row_id) for row_id, task_id in found)
        return ids

    @staticmethod
    def _insert_runs_sqlite(
        conn: Connection, params: Sequence[dict[str, Any]], *, check_task_ids: bool = True
    ) -> dict[str, int]:
        # The write transaction holds SQLite's write lock (BEGIN IMMEDIATE), so nobody else
        # inserts meanwhile: skip what exists, insert the rest with the driver's executemany
        # (several times faster than per-row statement processing), then read their ids.
        # INSERT OR IGNORE still drops a slot that exists under another task id.
        existing: set[str] = set()
        for part in chunks([values["task_id"] for values in params] if check_task_ids else []):
            existing.update(
                conn.execute(select(runs.c.task_id).where(runs.c.task_id.in_(part))).scalars()
            )
        texts: dict[datetime, str] = {}  # slots and claimed_at repeat a lot within a claim

        def text(value: datetime) -> str:
            found = texts.get(value)
            if found is None:
                found = texts[value] = sqlite_text(value)
            return found

        fresh: dict[str, tuple[Any, ...]] = {}
        for values in params:
            task_id = values["task_id"]
            if task_id in existing or task_id in fresh:
                continue
            fresh[task_id] = (
                values["entry"],
                text(values["scheduled_for"]),
                task_id,
                values["state"],
                values["manual"],
                values["queue"],
                text(values["claimed_at"]),
                None if values["finished_at"] is None else text(values["finished_at"]),
                0,
            )
        if not fresh:
            return {}
        conn.exec_driver_sql(_SQLITE_INSERT_RUN, list(fresh.values()))
        ids: dict[str, int] = {}
        for part in chunks(list(fresh)):
            found = conn.execute(select(runs.c.task_id, runs.c.id).where(runs.c.task_id.in_(part)))
            ids.update((task_id, row_id) for task_id, row_id in found)
        return ids

    def _advance_entries(
        self,
        conn: Connection,
        inserted: Sequence[RunRecord],
        next_runs: Mapping[str, datetime | None],
        now: datetime,
    ) -> None:
        newest: dict[str, datetime] = {}
        dispatched: dict[str, int] = {}
        for run in inserted:
            if run.manual:
                continue
            if run.entry not in newest or newest[run.entry] < run.scheduled_for:
                newest[run.entry] = run.scheduled_for
            if run.state is RunState.PENDING:
                dispatched[run.entry] = dispatched.get(run.entry, 0) + 1
        # Entries due together usually advance identically (same slot, same next run): one
        # UPDATE ... WHERE name IN (...) per such group; the rest go row by row (executemany).
        alike: dict[tuple[bool, bool, datetime | None, int, datetime | None], list[str]] = {}
        for name in newest.keys() | next_runs.keys():
            key = (
                name in newest,
                name in next_runs,
                newest.get(name),
                dispatched.get(name, 0),
                next_runs.get(name),
            )
            alike.setdefault(key, []).append(name)
        one_by_one: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
        for (has_slot, has_next, newest_slot, added, next_run), names in alike.items():
            if len(names) > 1:
                statement = update(entries).values(
                    self._progress(has_slot, has_next, newest_slot, added, next_run, now)
                )
                for part in chunks(sorted(names)):
                    conn.execute(statement.where(name_in(self._db, entries.c.name, part)))
                continue
            one_by_one.setdefault((has_slot, has_next), []).append(
                {
                    "b_name": names[0],
                    "b_slot": newest_slot,
                    "b_added": added,
                    "b_next": next_run,
                    "b_now": now,
                }
            )
        for (has_slot, has_next), params in one_by_one.items():
            values = self._progress(
                has_slot,
                has_next,
                bindparam("b_slot", type_=UTCDateTime()),
                bindparam("b_added"),
                bindparam("b_next", type_=UTCDateTime()),
                bindparam("b_now", type_=UTCDateTime()),
            )
            statement = update(entries).where(entries.c.name == bindparam("b_name")).values(values)
            for part in chunks(params):
                conn.execute(statement, list(part))

    @staticmethod
    def _progress(
        has_slot: bool, has_next: bool, newest_slot: Any, added: Any, next_run: Any, now: Any
    ) -> dict[str, Any]:
        """SET clause for an entry's progress; arguments are values or bind parameters."""
        values: dict[str, Any] = {
            "version": entries.c.version + 1,
            "updated_at": literal(now, UTCDateTime()) if isinstance(now, datetime) else now,
        }
        if has_slot:
            slot = (
                literal(newest_slot, UTCDateTime())
                if isinstance(newest_slot, datetime)
                else newest_slot
            )
            values["last_slot"] = case(
                (or_(entries.c.last_slot.is_(None), entries.c.last_slot < slot), slot),
                else_=entries.c.last_slot,
            )
            values["run_count"] = entries.c.run_count + added
        if has_next:
            values["next_run_at"] = (
                literal(next_run, UTCDateTime())
                if isinstance(next_run, datetime) or next_run is None
                else next_run
            )
        return values

    def claim_slots(
        self,
        claims: Sequence[SlotClaim],
        *,
        holder: str,
        token: int,
        next_runs: Mapping[str, datetime | None],
        now: datetime | None = None,
        dispatched: Sequence[str] = (),
        dispatched_at: datetime | None = None,
    ) -> list[RunRecord]:
        """Claim slots and advance their entries in one transaction, fenced by the lease.

        `dispatched` names runs of earlier claims that the broker has confirmed since: they are
        marked dispatched (`mark_dispatched`, at `dispatched_at`) in the same transaction, which
        saves beat a commit per chunk of a burst. Under LeaseLost they are not marked either.

        Raises LeaseLost (and writes nothing) unless `holder` holds the lease with `token`;
        the token alone is the fence (it moves whenever another beat takes over), and `now`,
        when given, also refuses a lease expired on the database's clock (the clock that wrote
        the expiry; the caller's `now` is not compared, so a skewed host cannot misjudge it).
        Returns only the rows this call inserted.
        PENDING claims count toward run_count; every non-manual claim moves last_slot.
        """
        with self._db.write() as conn:
            self._check_lease(conn, holder, token, now)
            claimed_at = datetime.now(UTC)
            if dispatched:
                mark_dispatched_in(conn, self._db, dispatched, dispatched_at or claimed_at)
            inserted = self._insert_runs(conn, [_claim_params(c, claimed_at) for c in claims])
            self._advance_entries(conn, inserted, next_runs, claimed_at)
        return inserted

    def claim_manual_run(
        self, entry: str, at: datetime, task_id: str, queue: str | None
    ) -> RunRecord:
        """A PENDING "run now" row (no lease: it never competes with a slot).

        Idempotent per task id. Two manual runs at the same instant are kept apart by a
        microsecond, since `at` is part of the slot key.
        """
        claimed = self.claim_manual_runs([ManualRun(entry, at, task_id, queue)])
        if not claimed:
            raise EntryNotFound(f"entry {entry!r} does not exist")
        return claimed[0]

    def claim_manual_runs(
        self, requests: Sequence[ManualRun], *, new_task_ids: bool = False
    ) -> list[RunRecord]:
        """PENDING rows for many "run now" requests in one write transaction (group commit).

        The API gathers the run-now requests that arrive together and claims them here at once,
        so a burst costs one commit instead of one per request. Each request behaves as
        `claim_manual_run`: idempotent per task id (an existing row comes back as it is), and
        runs of one entry at one instant are kept apart by a microsecond. Returns the rows in
        request order; a request whose entry does not exist is left out (nothing is written
        for it), so the caller can tell which ones to refuse. `new_task_ids`: the caller made
        the task ids just now (random UUIDs, as run-now does), so none can be in the ledger
        and the lookup that makes a repeated request idempotent is skipped.
        """
        if not requests:
            return []
        with self._db.write() as conn:
            known = self._existing_entries(conn, {request.entry for request in requests})
            wanted = [request for request in requests if request.entry in known]
            found = (
                {}
                if new_task_ids
                else self._runs_by_task_id(conn, [request.task_id for request in wanted])
            )
            todo = list({r.task_id: r for r in wanted if r.task_id not in found}.values())
            floors = {request.task_id: as_utc(request.at) for request in todo}
            claimed_at = datetime.now(UTC)
            for _ in range(_MANUAL_SLOT_ATTEMPTS):
                if not todo:
                    break
                params = self._free_manual_slots(conn, todo, floors, claimed_at)
                for run in self._insert_runs(conn, params, new_task_ids=True):
                    found[run.task_id] = run
                lost = [request for request in todo if request.task_id not in found]
                if lost:
                    # A concurrent writer (PostgreSQL) took the slot, or the task id itself:
                    # the latter is this run; for the former try the next microsecond.
                    found.update(self._runs_by_task_id(conn, [r.task_id for r in lost]))
                    for request, values in zip(todo, params, strict=True):
                        floors[request.task_id] = values["scheduled_for"] + _MICROSECOND
                todo = [request for request in lost if request.task_id not in found]
            if todo:
                raise StoreError(
                    f"cannot record a manual run of {todo[0].entry!r} at {todo[0].at.isoformat()}"
                )
        return [found[request.task_id] for request in requests if request.task_id in found]

    @staticmethod
    def _existing_entries(conn: Connection, names: set[str]) -> set[str]:
        known: set[str] = set()
        for part in chunks(sorted(names)):
            known.update(
                conn.execute(select(entries.c.name).where(entries.c.name.in_(part))).scalars()
            )
        return known

    @staticmethod
    def _runs_by_task_id(conn: Connection, task_ids: Sequence[str]) -> dict[str, RunRecord]:
        found: dict[str, RunRecord] = {}
        for part in chunks(sorted(set(task_ids))):
            rows = conn.execute(select(*RUN_COLUMNS).where(runs.c.task_id.in_(part)))
            found.update((run.task_id, run) for run in map(run_from_row, rows))
        return found

    @staticmethod
    def _free_manual_slots(
        conn: Connection,
        todo: Sequence[ManualRun],
        floors: Mapping[str, datetime],
        claimed_at: datetime,
    ) -> list[dict[str, Any]]:
        """Insert parameters giving each request the first free manual slot at or after its floor.

        The manual slots already taken near the requested instants are read once; requests of
        one entry at one instant then take consecutive microseconds.
        """
        lowest = min(floors.values())
        highest = max(floors.values()) + (len(todo) + _MANUAL_SLOT_ATTEMPTS) * _MICROSECOND
        taken: set[tuple[str, datetime]] = set()
        for part in chunks(sorted({request.entry for request in todo})):
            rows = conn.execute(
                select(runs.c.entry, runs.c.scheduled_for).where(
                    runs.c.manual.is_(True),
                    runs.c.entry.in_(part),
                    runs.c.scheduled_for >= lowest,
                    runs.c.scheduled_for <= highest,
                )
            )
            taken.update((entry, scheduled_for) for entry, scheduled_for in rows)
        params = []
        for request in todo:
            slot = floors[request.task_id]
            while (request.entry, slot) in taken:
                slot += _MICROSECOND
            taken.add((request.entry, slot))
            claim = SlotClaim(
                entry=request.entry,
                scheduled_for=slot,
                task_id=request.task_id,
                state=RunState.PENDING,
                queue=request.queue,
                manual=True,
            )
            params.append(_claim_params(claim, claimed_at))
        return params
