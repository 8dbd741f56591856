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

A burst is pipelined: `dispatch_due` claims chunk k, then waits for the confirms of chunk k-1
(which the broker stored while the claim ran), then writes chunk k's messages and returns
without waiting; `settle` waits for the last one. The runs confirmed are marked dispatched in
the next claim's transaction (one commit per chunk instead of two) and what is left by
`flush_marks` at the end of the burst. The order of the three steps per slot is unchanged
(claimed before published, marked only once confirmed); a crash leaves at most the last two
chunks' confirmed runs PENDING, to be republished as above (a worker's ledger then sees a
second delivery of the same task id and skips it once the run succeeded, see
`scheduling.celery.task`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from scheduling.beat.entrytable import EntryTable
from scheduling.beat.slotplan import (
    CatchupMemo,
    DuePlan,
    outgoing_run,
    plan_due_entry,
    send_time,
)
from scheduling.broker.publisher import (
    BatchPublishError,
    ConfirmedPublisher,
    OutgoingRun,
    SentBatch,
)
from scheduling.store import EntryRecord, RunRecord, RunState, Store

__all__ = ["DispatchReport", "Dispatcher"]

logger = logging.getLogger(__name__)

REPUBLISH_BATCH = 1000
MAX_REFUSALS = 3
"""Attempts a run the broker refuses (unroutable, nacked, too large) gets before it fails."""
REFUSAL_RETRY = timedelta(seconds=0.5)
_NO_JITTER = timedelta(0)


@dataclass
class DispatchReport:
    """What one chunk did. `dispatched` counts messages sent (their confirms are awaited with
    the next chunk, see module doc); `lag` is the largest delay from a slot's send time to its
    message being written to the broker, in seconds."""

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
        """Runs the broker confirmed, not yet marked dispatched in the store."""
        self._in_flight: SentBatch | None = None
        """The last chunk's messages, written but their confirms not yet awaited (`settle`)."""
        self._refusals: dict[str, tuple[int, OutgoingRun, datetime]] = {}
        """Runs the broker refused: (attempts so far, the message, when to try again)."""

    def dispatch_due(self, records: list[EntryRecord], token: int, now: datetime) -> DispatchReport:
        """Claim the due slots of `records` and send their messages (confirms: see module doc).

        Raises StoreError or LeaseLost before anything is claimed (the caller puts the entries
        back; the previous chunk is still in flight, see `settle`), or PublishError after the
        claim (the rows stay PENDING for `republish_pending`), also when the previous chunk's
        confirms failed.
        """
        plans = self._plan(records, now)
        claims = [claim for plan in plans for claim in plan.claims]
        next_runs = {plan.name: plan.next_run for plan in plans}
        marks = list(self._unmarked)
        inserted = self.store.claim_slots(
            claims,
            holder=self.holder,
            token=token,
            next_runs=next_runs,
            now=now,
            dispatched=marks,
            dispatched_at=datetime.now(UTC),
        )
        del self._unmarked[: len(marks)]
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
        self.settle(defer_marks=True)
        self._in_flight = self._send(outgoing)
        report.dispatched = len(outgoing)
        sent_at = datetime.now(UTC)
        lags = [
            (sent_at - send_time(run.entry, run.scheduled_for, self._jitter(run)))
            for run in outgoing
        ]
        report.lag = max(lags).total_seconds() if lags else None
        return report

    def settle(self, *, defer_marks: bool = False) -> None:
        """Wait for the confirms of the chunk in flight; mark its runs (now, or with the next
        claim when `defer_marks`). Raises PublishError as a synchronous publish would."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        try:
            self.publisher.wait(batch)
        except BatchPublishError as error:
            self._recover(batch.runs, error)
            return
        self._confirmed(batch.runs, defer=defer_marks)

    def republish_pending(self, now: datetime, older_than: datetime | None = None) -> int:
        """Publish claimed-but-unconfirmed runs again, with their own task ids; return how many."""
        self.flush_marks()
        total = 0
        after_id: int | None = None
        while True:
            # Keyset pages: rows left pending (refused, awaiting retry) never hide later ones.
            pending = self.store.pending_runs(
                older_than=older_than, limit=REPUBLISH_BATCH, after_id=after_id
            )
            if not pending:
                return total
            after_id = pending[-1].id
            outgoing: list[OutgoingRun] = []
            for run in pending:
                if run.task_id in self._refusals:
                    continue  # `retry_refused` sends it after its backoff
                try:
                    out = self._republishable(run, now)
                except Exception as error:  # this run's (and entry's) problem only
                    self._fail_run(run, f"cannot be republished: {type(error).__name__}: {error}")
                    continue
                if out is not None:
                    outgoing.append(out)
            self._publish(outgoing)
            total += len(outgoing)
            if outgoing:
                logger.info("republished %d claimed but unconfirmed runs", len(outgoing))
            if len(pending) < REPUBLISH_BATCH:
                return total

    def _fail_run(self, run: RunRecord, reason: str, *, entry_failed: bool = True) -> None:
        """Close a pending run that cannot be sent (else the sweep would retry it forever)."""
        self.store.record_run_finished(
            run.task_id,
            RunState.FAILED,
            datetime.now(UTC),
            error_type="Unschedulable",
            error_message=reason,
        )
        if entry_failed:
            self.table.fail(run.entry, f"run {run.task_id} {reason}")

    def flush_marks(self) -> None:
        """Mark confirmed runs not marked yet: deferred ones, and those the broker confirmed
        while the store was failing."""
        if self._unmarked:
            self.store.mark_dispatched(self._unmarked, datetime.now(UTC))
            self._unmarked = []

    def _plan(self, records: list[EntryRecord], now: datetime) -> list[DuePlan]:
        """Plans of the entries that could be planned; each failure stays with its entry."""
        plans: list[DuePlan] = []
        faults = self.table.faults
        memo: CatchupMemo = {}
        for record in records:
            shape = self.table.shape(record)
            if shape is None:
                continue
            unfinished = record.definition.overlap == "skip" and self.store.has_unfinished_run(
                record.name
            )
            try:
                plan = plan_due_entry(record, shape, now, self.max_catchup, unfinished, memo)
                self.table.due_time_after(record.name, plan.next_run)  # raises before the claim
            except Exception as error:  # arithmetic of this entry: its fault, not the tick's
                self.table.fail(record.name, error)
                continue
            if not plan.runs and record.name in faults:
                faults.succeeded(record.name)  # else when the broker confirms its runs
            plans.append(plan)
        return plans

    def _publish(self, outgoing: list[OutgoingRun]) -> None:
        """Publish and mark; a message the broker refuses is its run's problem (`_refuse`).

        Raises PublishError only for what is an outage: messages neither confirmed nor refused.
        """
        self.settle()
        batch = self._send(outgoing)
        if batch is not None:
            self._in_flight = batch
            self.settle()

    def _send(self, outgoing: list[OutgoingRun]) -> SentBatch | None:
        """Write `outgoing` to the broker; None if there was nothing to wait for."""
        if not outgoing:
            return None
        try:
            return self.publisher.send(outgoing)
        except BatchPublishError as error:
            self._recover(outgoing, error)
            return None

    def _recover(self, outgoing: list[OutgoingRun], error: BatchPublishError) -> None:
        """After a failed send or wait: mark what was confirmed, count what was refused, and
        re-raise unless every run is accounted for."""
        refused: dict[str, str] = dict(error.refused)
        try:
            self._confirmed([run for run in outgoing if run.task_id in error.confirmed])
            rest = [
                run
                for run in outgoing
                if run.task_id not in error.confirmed and run.task_id not in refused
            ]
            if not (error.channel_error and rest):
                if rest:
                    raise error
                return
            # Some message closed the channel: send the rest one by one to find it.
            for run in rest:
                try:
                    self.publisher.publish([run])
                except BatchPublishError as single:
                    if run.task_id not in single.refused:
                        raise
                    refused.update(single.refused)
                else:
                    self._confirmed([run])
        finally:
            if refused:
                self._refuse([run for run in outgoing if run.task_id in refused], refused)

    def _confirmed(self, runs: list[OutgoingRun], *, defer: bool = False) -> None:
        if not runs:
            return
        faults = self.table.faults
        for run in runs:
            self._refusals.pop(run.task_id, None)
            if run.entry in faults:
                faults.succeeded(run.entry)
        self._unmarked.extend(run.task_id for run in runs)
        if not defer:
            self.flush_marks()

    def _refuse(self, runs: list[OutgoingRun], reasons: dict[str, str]) -> None:
        """Count a refusal per run; after `MAX_REFUSALS` the run is failed and its entry in error.

        Until then the run stays PENDING and is sent again by `retry_refused` after a short
        backoff (a nack may be a full queue that drains); the rest of dispatch goes on.
        """
        now = datetime.now(UTC)
        for run in runs:
            reason = reasons[run.task_id]
            attempts = self._refusals.get(run.task_id, (0, run, now))[0] + 1
            if attempts < MAX_REFUSALS:
                retry_at = now + REFUSAL_RETRY * (1 << (attempts - 1))
                self._refusals[run.task_id] = (attempts, run, retry_at)
                continue
            self._refusals.pop(run.task_id, None)
            self.store.record_run_finished(
                run.task_id,
                RunState.FAILED,
                now,
                error_type="BrokerRefused",
                error_message=f"{reason} (after {attempts} attempts)",
            )
            self.table.fail(run.entry, f"the broker refused run {run.task_id}: {reason}")
            logger.error(
                "run %s of %r failed: %s (after %d attempts)", run.task_id, run.entry, reason,
                attempts,
            )  # fmt: skip

    def next_refusal_retry(self) -> datetime | None:
        """When the earliest refused run is due to be sent again (None: none is waiting)."""
        return min((at for _, _, at in self._refusals.values()), default=None)

    def retry_refused(self, now: datetime) -> None:
        """Send refused runs again once their backoff has passed."""
        due = [run for attempts, run, at in self._refusals.values() if at <= now]
        self._publish(due)

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
            fault = self.table.faults.active.get(run.entry)  # `shape` just recorded why
            reason = f"cannot be sent: {fault.message if fault else 'the entry is in error'}"
            self._fail_run(run, reason, entry_failed=False)
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
