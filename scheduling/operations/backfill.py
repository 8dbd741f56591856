"""Backfill: run the past slots of one entry that never ran, each exactly once.

The window [from, to] (both inclusive, `to` not in the future) is walked with the entry's own
timetable, so a backfill sees the same slots beat would have dispatched. Slots with no ledger
row, or recorded as missed, are claimed (see `scheduling.store.backfill`) and published with
confirms; the claim is the outbox, so a message the broker did not confirm stays pending and
the leading beat republishes it with the same task id. Repeating a backfill is harmless.

The window is counted before anything is claimed: past ``[beat].max_backfill`` slots the
request is refused as a whole (a typo in a year should not flood a queue).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scheduling.config.compiler import compile_entry
from scheduling.config.settings import Settings
from scheduling.errors import EntryNotFound, FieldProblem, InvalidEntry
from scheduling.operations.entries import (
    Publisher,
    mark_dispatched,
    publish_confirmed,
    run_message,
)
from scheduling.store import RunState, SlotClaim, Store
from scheduling.timing.slots import slot_task_id

__all__ = ["BackfillReport", "BackfillSlot", "backfill"]

logger = logging.getLogger(__name__)

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class BackfillSlot:
    """One slot of the window: what backfill does (or would do) with it, and why."""

    scheduled_for: datetime
    task_id: str
    action: str
    """``dispatch`` (claimed now, or would be in a dry run) or ``skip`` (already in the ledger)."""
    state: str | None
    """The ledger state that made it a skip (or ``missed``, reopened); None for a fresh slot."""


@dataclass(frozen=True)
class BackfillReport:
    entry: str
    start: datetime
    end: datetime
    dry_run: bool
    slots: list[BackfillSlot]
    dispatched: int
    """Claimed and confirmed by the broker (0 in a dry run)."""
    unconfirmed: int
    """Claimed but not confirmed: they stay pending and the leading beat republishes them."""

    @property
    def skipped(self) -> int:
        return sum(1 for slot in self.slots if slot.action == "skip")


def backfill(
    store: Store,
    publisher: Publisher | None,
    settings: Settings,
    name: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    dry_run: bool,
    actor: str,
) -> BackfillReport:
    """Dispatch (or, with `dry_run`, list) the slots of `name` in [start, end] that never ran.

    Raises `EntryNotFound`, or `InvalidEntry` naming ``from``/``to`` for a window that is
    backwards, in the future or holds more than ``[beat].max_backfill`` slots.
    """
    record = store.get_entry(name)
    if record is None:
        raise EntryNotFound(f"no schedule entry named {name!r}")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    problems = []
    if end < start:
        problems.append(FieldProblem("to", "must not be before from"))
    if end > now:
        problems.append(
            FieldProblem(
                "to", f"must not be in the future (now is {now.isoformat()}); beat runs those"
            )
        )
    if problems:
        raise InvalidEntry(name, problems)
    compiled = compile_entry(name, record.definition, settings)
    cap = settings.beat.max_backfill
    count = compiled.timetable.count_between(start - _TICK, end)
    if count > cap:
        raise InvalidEntry(
            name,
            [
                FieldProblem(
                    "from",
                    f"the window holds {count} slots, more than beat.max_backfill ({cap}); "
                    "backfill a shorter window at a time",
                )
            ],
        )
    instants = list(compiled.timetable.slots_between(start - _TICK, end))
    known = store.slot_states(name, start, end)
    slots = []
    for instant in instants:
        found = known.get(instant)
        if found is None or found[2] is RunState.MISSED:
            state = None if found is None else found[2].value
            slots.append(BackfillSlot(instant, slot_task_id(name, instant), "dispatch", state))
        else:
            slots.append(BackfillSlot(instant, found[1], "skip", found[2].value))
    if dry_run:
        return BackfillReport(name, start, end, True, slots, 0, 0)
    assert publisher is not None, "a backfill that dispatches needs a publisher"
    claims = [
        SlotClaim(name, slot.scheduled_for, slot.task_id, RunState.PENDING, compiled.queue)
        for slot in slots
        if slot.action == "dispatch"
    ]
    details = {"from": _iso_z(start), "to": _iso_z(end), "slots": len(instants)}
    claimed = store.claim_backfill(name, claims, actor=actor, details=details)
    won = {run.task_id for run in claimed}
    # A slot claimed meanwhile by beat or by a concurrent backfill is a skip after all.
    slots = [
        slot
        if slot.action == "skip" or slot.task_id in won
        else BackfillSlot(slot.scheduled_for, slot.task_id, "skip", RunState.PENDING.value)
        for slot in slots
    ]
    outgoing = [run_message(compiled, record.definition, run, now) for run in claimed]
    confirmed, failure = publish_confirmed(publisher, outgoing)
    if failure is not None:
        logger.warning(
            "backfill of %r: %d run(s) not confirmed (%s); the leading beat republishes them",
            name,
            len(outgoing) - len(confirmed),
            failure,
        )
    if confirmed:
        mark_dispatched(store, sorted(confirmed), datetime.now(UTC))
    return BackfillReport(
        name, start, end, False, slots, len(confirmed), len(outgoing) - len(confirmed)
    )


def _iso_z(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")
