"""Ledger retention: `purge_runs` deletes old finished runs, in batches, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.config.settings import ScheduleEntry
from scheduling.store import RunState, Store
from scheduling.tasks import maintenance
from scheduling.tasks.maintenance import purge_finished_runs

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def claim(store: Store, entry: str, at: datetime) -> str:
    task_id = f"{entry}-{at.isoformat()}"
    store.claim_manual_run(entry, at, task_id, "default")
    return task_id


def test_old_finished_runs_go_and_recent_or_unfinished_ones_stay(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance, "PURGE_BATCH", 7)
    store.create_entry("e", ScheduleEntry(task="t", every=timedelta(hours=1)), next_run_at=None)
    old = NOW - timedelta(days=40)
    purged_ids = []
    for minute in range(25):
        task_id = claim(store, "e", old + timedelta(minutes=minute))
        store.record_run_finished(task_id, RunState.SUCCEEDED, old + timedelta(minutes=minute))
        purged_ids.append(task_id)
    stuck = claim(store, "e", old - timedelta(hours=1))  # claimed long ago, never finished
    recent = claim(store, "e", NOW - timedelta(days=2))
    store.record_run_finished(recent, RunState.FAILED, NOW - timedelta(days=2))

    assert purge_finished_runs(store, timedelta(days=30), NOW) == 25
    assert all(store.get_run(task_id) is None for task_id in purged_ids)
    assert store.get_run(stuck) is not None
    assert store.get_run(recent) is not None
    assert purge_finished_runs(store, timedelta(days=30), NOW) == 0


def test_a_non_positive_retention_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="positive"):
        purge_finished_runs(store, timedelta(0), NOW)
