"""`kill -9` of a worker's main process mid-task: the run is redelivered and completes once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduling.store import RunState
from tests.support.polling import wait_for
from tests.support.worker_stage import WorkerStage, trace_events, worker_stage

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def stage(tmp_path: Path, broker_url: str) -> Iterator[WorkerStage]:
    with worker_stage(tmp_path, broker_url, roles=("default",)) as s:
        workers = [s.start_worker("default", name, wait=False) for name in ("alpha", "bravo")]
        for worker in workers:
            s.wait_ready(worker)
        s.wait_for_queue("default", consumers=2)
        yield s


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_run_of_a_killed_worker_completes_on_another_and_succeeds_once(
    stage: WorkerStage, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    task_id = stage.send(
        "tests.support.worker_tasks.sleep_then_mark",
        "default",
        kwargs={"path": str(trace), "seconds": 3},
    )
    started = stage.wait_for_run(task_id, {RunState.STARTED})
    wait_for(lambda: trace_events(trace) == ["start"], 10, "the task body started")
    assert started.hostname is not None
    victim = next(w for w in stage.workers if started.hostname.startswith(f"{w.name}@"))
    survivor = next(w for w in stage.workers if w is not victim)
    pool_child = int(trace.read_text().split()[1])

    victim.kill()  # SIGKILL to the main process only, as a crash would

    wait_for(lambda: not pid_alive(pool_child), 10, "the orphaned pool child died with it")
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED, RunState.FAILED}, timeout=60)
    assert run.state is RunState.SUCCEEDED
    assert run.hostname is not None
    assert run.hostname.startswith(f"{survivor.name}@")
    assert trace_events(trace) == ["start", "start", "done"], "killed once, completed once"
    assert stage.store.count_runs(state=RunState.SUCCEEDED) == 1
    assert stage.store.count_runs() == 1
    stage.wait_for_queue("default", messages=0, consumers=1)
