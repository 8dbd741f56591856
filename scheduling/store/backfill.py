"""Backfill claims: past slots of one entry that never ran, claimed at most once each.

A backfilled slot is an ordinary slot row (manual = false, the slot's own task id), so the
unique slot key that makes beat's dispatch exactly-once makes backfill exactly-once too: a
second backfill of the same window, or beat catching up at the same moment, finds the row and
claims nothing. A slot recorded as *missed* never ran either; backfill reopens that row (back
to pending, same task id) instead of inserting a second one. Every other recorded state
(pending, dispatched, running, succeeded, failed, expired, skipped, revoked) is left alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from scheduling.errors import EntryNotFound
from scheduling.store.claims import SlotClaims
from scheduling.store.history import HistoryRow, write_history
from scheduling.store.records import RunRecord, RunState, SlotClaim
from scheduling.store.rows import RUN_COLUMNS, chunks, run_from_row
from scheduling.store.schema import entries, runs
from scheduling.timing.timetables import as_utc

__all__ = ["Backfills", "SlotState"]

SlotState = tuple[datetime, str, RunState]
"""(scheduled_for, task id, state) of a slot row already in the ledger."""


class Backfills(SlotClaims):
    """Backfill reads and claims; mixed into `Store`, which provides `_db`."""

    def slot_states(self, entry: str, start: datetime, end: datetime) -> dict[datetime, SlotState]:
        """The entry's scheduled (not manual) ledger rows with start <= slot <= end, by slot."""
        statement = select(runs.c.scheduled_for, runs.c.task_id, runs.c.state).where(
            runs.c.entry == entry,
            runs.c.manual.is_(False),
            runs.c.scheduled_for >= as_utc(start),
            runs.c.scheduled_for <= as_utc(end),
        )
        with self._db.read() as conn:
            rows = conn.execute(statement).all()
        return {
            row.scheduled_for: (row.scheduled_for, str(row.task_id), RunState(row.state))
            for row in rows
        }

    def claim_backfill(
        self,
        entry: str,
        claims: Sequence[SlotClaim],
        *,
        actor: str,
        details: Mapping[str, Any],
    ) -> list[RunRecord]:
        """Claim `claims` (PENDING slot claims of `entry`) where no run of the slot exists yet.

        One write transaction: absent slots are inserted, missed ones reopened, and one
        history record (``backfill`` by `actor`, `details` plus how many were claimed) is
        written. Returns the claimed runs, oldest first; EntryNotFound if the entry is gone.
        """
        now = datetime.now(UTC)
        with self._db.write() as conn:
            exists = conn.execute(
                select(entries.c.name).where(entries.c.name == entry)
            ).scalar_one_or_none()
            if exists is None:
                raise EntryNotFound(f"no schedule entry named {entry!r}")
            reopened = self._reopen_missed(conn, entry, claims, now)
            reopened_slots = {run.scheduled_for for run in reopened}
            params = [
                {
                    "entry": claim.entry,
                    "scheduled_for": as_utc(claim.scheduled_for),
                    "task_id": claim.task_id,
                    "state": RunState.PENDING.value,
                    "manual": False,
                    "queue": claim.queue,
                    "claimed_at": now,
                    "finished_at": None,
                    "retries": 0,
                }
                for claim in claims
                if as_utc(claim.scheduled_for) not in reopened_slots
            ]
            inserted = self._insert_runs(conn, params)
            claimed = sorted([*reopened, *inserted], key=lambda run: run.scheduled_for)
            record = {**details, "claimed": len(claimed)}
            write_history(conn, [HistoryRow(entry, "backfill", actor, record)], now)
        return claimed

    def _reopen_missed(
        self, conn: Connection, entry: str, claims: Sequence[SlotClaim], now: datetime
    ) -> list[RunRecord]:
        """Missed rows among `claims`' slots back to PENDING (locked first on PostgreSQL)."""
        slots = [as_utc(claim.scheduled_for) for claim in claims]
        queue_of = {as_utc(claim.scheduled_for): claim.queue for claim in claims}
        found: list[RunRecord] = []
        for part in chunks(slots):
            statement = select(*RUN_COLUMNS).where(
                runs.c.entry == entry,
                runs.c.manual.is_(False),
                runs.c.state == RunState.MISSED.value,
                runs.c.scheduled_for.in_(part),
            )
            if self._db.is_postgresql:
                statement = statement.with_for_update()
            found.extend(run_from_row(row) for row in conn.execute(statement))
        reopened = []
        for run in found:
            conn.execute(
                update(runs)
                .where(runs.c.id == run.id)
                .values(
                    state=RunState.PENDING.value,
                    claimed_at=now,
                    finished_at=None,
                    queue=queue_of[run.scheduled_for],
                )
            )
            reopened.append(
                dataclasses.replace(
                    run,
                    state=RunState.PENDING,
                    claimed_at=now,
                    finished_at=None,
                    queue=queue_of[run.scheduled_for],
                )
            )
        return reopened
