"""Finished means finished: a real worker acknowledges, without running it, a message whose run
the ledger closed (revoked, missed, skipped, expired), whose entry was deleted, or whose row is
gone (purged after it succeeded); a message Periodic did not send still runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduling.store import RunState
from tests.support.worker_stage import WorkerStage, trace_events, worker_stage

pytestmark = pytest.mark.integration

TASK = "tests.support.worker_tasks.sleep_then_mark"


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[WorkerStage]:
    directory = tmp_path_factory.mktemp("refusals")
    with worker_stage(directory, broker_url, roles=("default",)) as s:
        s.start_worker("default", "refusing-worker")
        yield s


def drain(stage: WorkerStage, tmp_path: Path) -> None:
    """A marker run behind the message under test: once it succeeded, the worker took both."""
    marker = stage.send(TASK, "default", kwargs={"path": str(tmp_path / "marker"), "seconds": 0})
    stage.wait_for_run(marker, {RunState.SUCCEEDED})
    stage.wait_for_queue("default", messages=0)


@pytest.mark.parametrize(
    "state", [RunState.REVOKED, RunState.MISSED, RunState.SKIPPED, RunState.EXPIRED], ids=str
)
def test_a_message_of_a_closed_run_is_acknowledged_without_running(
    stage: WorkerStage, tmp_path: Path, state: RunState
) -> None:
    trace = tmp_path / "trace"
    task_id = stage.claim_run(TASK, "default")
    stage.store.record_run_finished(
        task_id, state, datetime.now(UTC), error_message="closed by the test"
    )
    stage.send(TASK, "default", kwargs={"path": str(trace), "seconds": 0}, task_id=task_id)
    drain(stage, tmp_path)
    assert trace_events(trace) == [], f"a {state} run executed"
    run = stage.store.get_run(task_id)
    assert run is not None
    assert run.state is state
    assert run.error_message is not None
    assert run.error_message.startswith("closed by the test; a delivered message was acknowledged")


def test_a_message_of_a_deleted_entry_is_acknowledged_and_its_run_revoked(
    stage: WorkerStage, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    task_id = stage.claim_run(TASK, "default")
    run = stage.store.get_run(task_id)
    assert run is not None
    stage.store.delete_entry(run.entry)
    stage.send(TASK, "default", kwargs={"path": str(trace), "seconds": 0}, task_id=task_id)
    drain(stage, tmp_path)
    assert trace_events(trace) == []
    after = stage.store.get_run(task_id)
    assert after is not None
    assert (after.state, after.error_type) == (RunState.REVOKED, "EntryDeleted")


def test_dedup_survives_purge_runs(stage: WorkerStage, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    kwargs = {"path": str(trace), "seconds": 0}
    headers = {"periodic_entry": "purged", "periodic_slot": "2026-01-01T00:00:00Z"}
    task_id = stage.send(TASK, "default", kwargs=kwargs, headers=headers)
    stage.wait_for_run(task_id, {RunState.SUCCEEDED})
    assert stage.store.purge_runs(datetime.now(UTC) + timedelta(seconds=1)) >= 1
    assert stage.store.get_run(task_id) is None
    stage.send(TASK, "default", kwargs=kwargs, task_id=task_id, known=False, headers=headers)
    drain(stage, tmp_path)
    assert trace_events(trace) == ["start", "done"], "the redelivery after the purge ran"


def test_a_message_periodic_did_not_send_still_runs(stage: WorkerStage, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    stage.send(TASK, "default", kwargs={"path": str(trace), "seconds": 0}, known=False)
    drain(stage, tmp_path)
    assert trace_events(trace) == ["start", "done"]
