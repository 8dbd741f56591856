"""Putting runs in the ledger before a test publishes their messages itself, as beat does.

A worker refuses a Periodic message (one with a ``periodic_entry`` header) whose run the ledger
does not know: deleted, or purged after it finished. A test that publishes with
`ConfirmedPublisher` directly claims its runs here first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from scheduling.broker.publisher import OutgoingRun
from scheduling.config.settings import ScheduleEntry
from scheduling.store import Store

__all__ = ["claim_like_beat"]


def claim_like_beat(database_url: str, runs: Sequence[OutgoingRun]) -> None:
    """An entry per run's entry name (if missing) and a pending run row with its task id."""
    with Store.open(database_url) as store:
        for run in runs:
            if not store.entry_exists(run.entry):
                definition = ScheduleEntry(task=run.task, every=timedelta(hours=1))
                store.create_entry(run.entry, definition, next_run_at=None)
            store.claim_manual_run(run.entry, run.scheduled_for, run.task_id, run.queue)
