"""Store records (and outgoing runs) built in memory, for tests of code that consumes them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduling.broker.publisher import OutgoingRun
from scheduling.config.settings import ScheduleEntry
from scheduling.store import EntryRecord

CREATED = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
EVERY_MINUTE = ScheduleEntry(
    task="scheduling.tasks.heartbeat.heartbeat", every=timedelta(minutes=1)
)


def entry_record(
    name: str = "ping",
    definition: ScheduleEntry = EVERY_MINUTE,
    next_run_at: datetime | None = None,
    **changes: Any,
) -> EntryRecord:
    """An API-owned, unpaused, never-run entry at version 1; `changes` override any field."""
    base = EntryRecord(
        name=name,
        owner="api",
        definition=definition,
        paused=False,
        next_run_at=next_run_at,
        last_slot=None,
        run_count=0,
        version=1,
        change_seq=1,
        created_at=CREATED,
        updated_at=CREATED,
    )
    return replace(base, **changes)


def outgoing_runs(queue: str, count: int) -> list[OutgoingRun]:
    """`count` heartbeat runs for `queue`, each with a fresh task id, slot = this second."""
    slot = datetime.now(UTC).replace(microsecond=0)
    return [
        OutgoingRun(
            task_id=str(uuid.uuid4()),
            task="scheduling.tasks.heartbeat.heartbeat",
            args=[],
            kwargs={},
            queue=queue,
            entry=f"entry-{index}",
            scheduled_for=slot,
            expires=slot + timedelta(hours=1),
        )
        for index in range(count)
    ]
