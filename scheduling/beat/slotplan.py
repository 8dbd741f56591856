"""From a due entry to ledger claims and task messages: the pure part of a beat tick.

Beat pops an entry when its next slot plus that slot's jitter has passed, and asks this module
what to write: which slots to claim for dispatch, which to record as missed (catch-up policy,
misfire grace, `beat.max_catchup`) or skipped (`overlap = "skip"` while a run is unfinished),
where the entry goes next (None once `end` or `max_runs` exhausts it), and the messages to
publish for the claimed slots. No I/O here: the scheduler claims the slots in one store
transaction and publishes the messages in one confirmed batch.

Timing rules. A slot's identity is its unjittered instant (`scheduled_for`, the task id's
source); it is sent at that instant plus its deterministic jitter offset, and lateness is
measured from that send time, so a large jitter never makes a slot look late. A message
expires `expiry` after it is sent, not after its slot, so a slot caught up after an outage is
not dead on arrival.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduling.broker.publisher import OutgoingRun
from scheduling.config.compiler import entry_timetable, expiry, message_priority, resolve_queue
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.store import EntryRecord, RunState, SlotClaim
from scheduling.timing.catchup import CatchupPlan, plan_catchup
from scheduling.timing.slots import jitter_offset, slot_task_id
from scheduling.timing.timetables import Timetable

__all__ = ["CatchupMemo", "DuePlan", "EntryShape", "entry_shape", "plan_due_entry", "send_time"]

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class EntryShape:
    """What beat needs to know about a definition, resolved against the settings once."""

    task: str
    timetable: Timetable
    queue: str
    expiry: timedelta | None
    priority: int | None
    definition: ScheduleEntry


def entry_shape(definition: ScheduleEntry, settings: Settings) -> EntryShape:
    """Resolve timetable, queue, expiry and priority; KeyError/ValueError if it cannot run."""
    timetable = entry_timetable(definition, settings)
    queue = resolve_queue(definition, settings)
    return EntryShape(
        task=definition.task,
        timetable=timetable,
        queue=queue,
        expiry=expiry(definition, timetable),
        priority=message_priority(queue, settings),
        definition=definition,
    )


def send_time(name: str, slot: datetime, jitter: timedelta) -> datetime:
    """When a slot is due to be sent: its instant plus its jitter offset."""
    return slot + jitter_offset(name, slot, jitter) if jitter else slot


@dataclass
class DuePlan:
    """The outcome of one due entry: claims for the ledger and the runs to publish."""

    name: str
    claims: list[SlotClaim] = field(default_factory=list)
    runs: dict[str, OutgoingRun] = field(default_factory=dict)
    next_run: datetime | None = None
    missed_count: int = 0


CatchupMemo = dict[tuple[int, datetime], tuple[EntryShape, CatchupPlan]]
"""Catch-up plans of unjittered entries by (id of their shape, next slot), for one `now`; the
shape is kept in the value, so its id cannot be reused while the memo lives."""


def plan_due_entry(
    record: EntryRecord,
    shape: EntryShape,
    now: datetime,
    max_catchup: int,
    unfinished: bool = False,
    memo: CatchupMemo | None = None,
) -> DuePlan:
    """Slots of `record` due by `now`; `unfinished` says a previous run is still going.

    `memo` (one per `now` and `max_catchup`) shares the catch-up arithmetic between entries of
    one definition due at the same slot, as a burst's are.
    """
    definition = shape.definition
    plan = DuePlan(record.name)
    first = record.next_run_at
    if first is None:
        return plan
    key = (id(shape), first)
    shared = memo.get(key) if memo is not None and not definition.jitter else None
    if shared is not None:
        catchup = shared[1]
    else:
        # Lateness is measured from the slot's send time, not its instant (see module doc).
        offset = send_time(record.name, first, definition.jitter) - first
        effective_now = now - offset
        catchup = plan_catchup(
            shape.timetable,
            first - _TICK,
            max(effective_now, first),
            definition.catchup,
            definition.misfire_grace,
            max(1, max_catchup),
        )
        if memo is not None and not definition.jitter:
            memo[key] = (shape, catchup)
    plan.next_run = catchup.next_slot
    for slot in catchup.missed:
        plan.claims.append(_claim(record.name, slot, RunState.MISSED, shape.queue))
    plan.missed_count = catchup.missed_count
    runs_left = None if definition.max_runs is None else definition.max_runs - record.run_count
    pending = 0
    for slot in catchup.dispatch:
        if runs_left is not None and pending >= runs_left:
            break
        # overlap = "skip": the first slot's run is unfinished when the next one comes up.
        skipped = definition.overlap == "skip" and (unfinished or pending > 0)
        state = RunState.SKIPPED if skipped else RunState.PENDING
        claim = _claim(record.name, slot, state, shape.queue)
        plan.claims.append(claim)
        if not skipped:
            pending += 1
            plan.runs[claim.task_id] = outgoing_run(record.name, shape, slot, claim.task_id, now)
    if runs_left is not None and pending >= runs_left:
        plan.next_run = None
    return plan


def outgoing_run(
    name: str, shape: EntryShape, slot: datetime, task_id: str, now: datetime
) -> OutgoingRun:
    """The message for one slot (or a republish of it), expiring `expiry` after `now`."""
    definition = shape.definition
    return OutgoingRun(
        task_id=task_id,
        task=shape.task,
        args=list(definition.args),
        kwargs=dict(definition.kwargs),
        queue=shape.queue,
        entry=name,
        scheduled_for=slot,
        expires=now + shape.expiry if shape.expiry is not None else None,
        priority=shape.priority,
    )


def _claim(name: str, slot: datetime, state: RunState, queue: str) -> SlotClaim:
    return SlotClaim(name, slot, slot_task_id(name, slot), state, queue)
