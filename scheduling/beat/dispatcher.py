"""Claim, publish, confirm, mark: the outbox that makes each slot's dispatch happen exactly once.

1. Every due slot of a chunk (the scheduler hands over at most `DISPATCH_CHUNK` entries) is
   claimed in ONE store transaction, fenced by the lease token: a ledger row
   per slot whose unique (entry, scheduled_for) key makes a second claim, by this beat or any
   other, insert nothing. Missed and skipped slots are written in the same transaction.
2. Only the rows this claim inserted are published, in ONE pipelined batch with publisher
   confirms, each with the slot's deterministic task id.
3. Confirmed runs are marked dispatched. A crash or broker fault between 1 and 3 leaves rows
   PENDING; they are republished with the same task id by `republish_pending` (after take-over,
   start-up, broker recovery, and periodically for manual runs whose publisher died), so a slot
   is never lost and never claimed twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from scheduling.beat.entrytable import EntryTable
from scheduling.beat.slotplan import DuePlan, outgoing_run, plan_due_entry, send_time
from scheduling.broker.publisher import BatchPublishError, ConfirmedPublisher, OutgoingRun
from scheduling.store import EntryRecord, RunRecord, RunState, Store

__all__ = ["DispatchReport", "Dispatcher"]

logger = logging.getLogger(__name__)

REPUBLISH_BATCH = 1000
_NO_JITTER = timedelta(0)


@dataclass
class DispatchReport:
    dispatched: int = 0
    missed: int = 0
    skipped: int = 0
    lag: float | None = None


class Dispatcher:
    """Turns due entries into claimed, published and confirmed runs (see module doc)."""

    def __init__(
        self,
        store: Store,
        publisher: ConfirmedPublisher,
        table: EntryTable,
        holder: str,
        max_catchup: int,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.table = table
        self.holder = holder
        self.max_catchup = max_catchup
        self._unmarked: list[str] = []

    def dispatch_due(self, records: list[EntryRecord], token: int, now: datetime) -> DispatchReport:
        """Claim and publish the due slots of `records`.

        Raises StoreError or LeaseLost before anything is claimed (the caller puts the entries
        back), or PublishError after the claim (the rows stay PENDING for `republish_pending`).
        """
        plans = self._plan(records, now)
        claims = [claim for plan in plans for claim in plan.claims]
        next_runs = {plan.name: plan.next_run for plan in plans}
        inserted = self.store.claim_slots(
            claims, holder=self.holder, token=token, next_runs=next_runs, now=now
        )
        report = DispatchReport()
        pending_by_entry: dict[str, int] = {}
        for run in inserted:
            if run.state is RunState.PENDING:
                pending_by_entry[run.entry] = pending_by_entry.get(run.entry, 0) + 1
            elif run.state is RunState.MISSED:
                report.missed += 1
            elif run.state is RunState.SKIPPED:
                report.skipped += 1
        for plan in plans:
            self.table.advance(plan.name, plan.next_run, pending_by_entry.get(plan.name, 0))
        by_task_id = {task_id: run for plan in plans for task_id, run in plan.runs.items()}
        outgoing = [by_task_id[r.task_id] for r in inserted if r.task_id in by_task_id]
        if report.missed or report.skipped:
            # Routine: the entries' own catch-up and overlap policies at work, not a fault.
            logger.info(
                "recorded %d missed and %d skipped slots (catch-up / overlap policy)",
                report.missed,
                report.skipped,
            )
        self._publish(outgoing)
        report.dispatched = len(outgoing)
        confirmed_at = datetime.now(UTC)
        lags = [
            (confirmed_at - send_time(run.entry, run.scheduled_for, self._jitter(run)))
            for run in outgoing
        ]
        report.lag = max(lags).total_seconds() if lags else None
        return report

    def republish_pending(self, now: datetime, older_than: datetime | None = None) -> int:
        """Publish claimed-but-unconfirmed runs again, with their own task ids; return how many."""
        self.flush_marks()
        total = 0
        seen: set[str] = set()
        while True:
            pending = [
                run
                for run in self.store.pending_runs(older_than=older_than, limit=REPUBLISH_BATCH)
                if run.task_id not in seen
            ]
            if not pending:
                return total
            seen.update(run.task_id for run in pending)
            outgoing = [out for out in (self._republishable(run, now) for run in pending) if out]
            self._publish(outgoing)
            total += len(outgoing)
            if outgoing:
                logger.info("republished %d claimed but unconfirmed runs", len(outgoing))

    def flush_marks(self) -> None:
        """Retry marking runs the broker confirmed while the store was failing."""
        if self._unmarked:
            self.store.mark_dispatched(self._unmarked, datetime.now(UTC))
            self._unmarked = []

    def _plan(self, records: list[EntryRecord], now: datetime) -> list[DuePlan]:
        plans: list[DuePlan] = []
        for record in records:
            shape = self.table.shape(record)
            if shape is None:
                continue
            unfinished = record.definition.overlap == "skip" and self.store.has_unfinished_run(
                record.name
            )
            plans.append(plan_due_entry(record, shape, now, self.max_catchup, unfinished))
        return plans

    def _publish(self, outgoing: list[OutgoingRun]) -> None:
        if not outgoing:
            return
        try:
            self.publisher.publish(outgoing)
        except BatchPublishError as error:
            if error.confirmed:
                self._mark(list(error.confirmed))
            raise
        self._mark([run.task_id for run in outgoing])

    def _mark(self, task_ids: list[str]) -> None:
        self._unmarked.extend(task_ids)
        self.flush_marks()

    def _republishable(self, run: RunRecord, now: datetime) -> OutgoingRun | None:
        record = self.table.records.get(run.entry) or self.store.get_entry(run.entry)
        if record is None:
            self.store.record_run_finished(
                run.task_id,
                RunState.REVOKED,
                now,
                error_type="EntryDeleted",
                error_message="the entry was deleted before its message was confirmed",
            )
            return None
        shape = self.table.shape(record)
        if shape is None:
            return None
        grace = record.definition.misfire_grace
        if not run.manual and grace is not None and now - run.scheduled_for > grace:
            self.store.record_run_finished(
                run.task_id,
                RunState.MISSED,
                now,
                error_type="MisfireGrace",
                error_message="not confirmed by the broker within misfire_grace of its slot",
            )
            return None
        out = outgoing_run(run.entry, shape, run.scheduled_for, run.task_id, now)
        if run.queue and run.queue != out.queue:
            out = replace(out, queue=run.queue)
        return out

    def _jitter(self, run: OutgoingRun) -> timedelta:
        row = self.table.index.get(run.entry)
        return row.jitter if row else _NO_JITTER
