"""A real worker records each run's life in the ledger: start, success, failure, retries."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduling.store import RunState
from tests.support.worker_stage import WorkerStage, trace_events, worker_stage

pytestmark = pytest.mark.integration

TIME_LIMITS = """
[worker.time_limits."tests.support.worker_tasks.respect_soft_limit"]
soft = "500ms"

[worker.time_limits."tests.support.worker_tasks.overstay"]
soft = "300ms"
hard = "1s"
"""


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[WorkerStage]:
    directory = tmp_path_factory.mktemp("ledger")
    with worker_stage(directory, broker_url, roles=("default",), extra_settings=TIME_LIMITS) as s:
        s.start_worker("default", "ledger-worker")
        yield s


def test_success_is_recorded_with_hostname_and_runtime(stage: WorkerStage, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    task_id = stage.send(
        "tests.support.worker_tasks.sleep_then_mark",
        "default",
        kwargs={"path": str(trace), "seconds": 0.3},
    )
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED})
    assert run.hostname is not None
    assert run.hostname.startswith("ledger-worker@")
    assert run.started_at is not None
    assert run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert run.runtime is not None
    assert 0.3 <= run.runtime < 10
    assert (run.error_type, run.error_message, run.retries) == (None, None, 0)
    assert trace_events(trace) == ["start", "done"]


def test_failure_records_error_type_and_message_but_never_the_arguments(
    stage: WorkerStage, tmp_path: Path
) -> None:
    secret = "hunter2-do-not-log"
    task_id = stage.send(
        "tests.support.worker_tasks.fail_with",
        "default",
        kwargs={"path": str(tmp_path / "t"), "secret": secret},
    )
    run = stage.wait_for_run(task_id, {RunState.FAILED})
    assert run.error_type == "ValueError"
    assert run.error_message == "the report could not be built"
    assert run.hostname is not None
    assert run.runtime is not None
    assert secret not in repr(dataclasses.asdict(run))


def test_transient_errors_are_retried_with_backoff_until_success(
    stage: WorkerStage, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    task_id = stage.send(
        "tests.support.worker_tasks.flaky", "default", kwargs={"path": str(trace), "failures": 2}
    )
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED, RunState.FAILED})
    assert run.state is RunState.SUCCEEDED
    assert run.retries == 2
    assert trace_events(trace) == ["start", "start", "start"]


def test_retries_stop_at_max_retries_and_the_run_fails(stage: WorkerStage, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    task_id = stage.send(
        "tests.support.worker_tasks.flaky", "default", kwargs={"path": str(trace), "failures": 99}
    )
    run = stage.wait_for_run(task_id, {RunState.FAILED}, timeout=60)
    assert run.retries == stage.settings.worker.max_retries == 3
    assert run.error_type == "TransientError"
    assert len(trace_events(trace)) == 4


def test_a_task_id_the_store_does_not_know_runs_but_leaves_no_ledger_row(
    stage: WorkerStage, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    task_id = stage.send(
        "tests.support.worker_tasks.sleep_then_mark",
        "default",
        kwargs={"path": str(trace), "seconds": 0},
        known=False,
    )
    marker = stage.send(
        "tests.support.worker_tasks.sleep_then_mark",
        "default",
        kwargs={"path": str(tmp_path / "m"), "seconds": 0},
    )
    stage.wait_for_run(marker, {RunState.SUCCEEDED})
    assert trace_events(trace) == ["start", "done"]
    assert stage.store.get_run(task_id) is None


def test_a_duplicate_of_a_succeeded_run_is_acknowledged_without_running(
    stage: WorkerStage, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    kwargs = {"path": str(trace), "seconds": 0}
    task_id = stage.send("tests.support.worker_tasks.sleep_then_mark", "default", kwargs=kwargs)
    first = stage.wait_for_run(task_id, {RunState.SUCCEEDED})
    stage.send(
        "tests.support.worker_tasks.sleep_then_mark", "default", kwargs=kwargs, task_id=task_id
    )
    marker = stage.send(
        "tests.support.worker_tasks.sleep_then_mark",
        "default",
        kwargs={"path": str(tmp_path / "m"), "seconds": 0},
    )
    stage.wait_for_run(marker, {RunState.SUCCEEDED})
    assert trace_events(trace) == ["start", "done"], "the duplicate did not run"
    assert stage.store.get_run(task_id) == first
    stage.wait_for_queue("default", messages=0)


def test_soft_time_limit_from_settings_fails_the_run(stage: WorkerStage, tmp_path: Path) -> None:
    task_id = stage.send(
        "tests.support.worker_tasks.respect_soft_limit",
        "default",
        kwargs={"path": str(tmp_path / "t"), "seconds": 30},
    )
    run = stage.wait_for_run(task_id, {RunState.FAILED})
    assert run.error_type == "SoftTimeLimitExceeded"
    assert run.runtime is not None
    assert run.runtime < 10


def test_hard_time_limit_from_settings_kills_the_task_and_fails_the_run(
    stage: WorkerStage, tmp_path: Path
) -> None:
    trace = tmp_path / "t"
    task_id = stage.send(
        "tests.support.worker_tasks.overstay", "default", kwargs={"path": str(trace), "seconds": 30}
    )
    run = stage.wait_for_run(task_id, {RunState.FAILED})
    assert run.error_type == "TimeLimitExceeded"
    assert "soft-limit" in trace_events(trace)
    assert run.runtime is not None
    assert run.runtime < 10
