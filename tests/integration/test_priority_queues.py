"""Urgent work is not stuck behind a backlog: each priority has its own queue and workers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduling.store import RunState
from tests.support.worker_stage import WorkerStage, worker_stage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKLOG = 500


@pytest.fixture
def stage(tmp_path: Path, broker_url: str) -> Iterator[WorkerStage]:
    with worker_stage(tmp_path, broker_url, roles=("high", "low")) as s:
        workers = [s.start_worker(role, f"{role}-worker", wait=False) for role in ("high", "low")]
        for worker in workers:
            s.wait_ready(worker)
        yield s


def test_a_high_task_starts_within_a_second_despite_500_slow_tasks_on_low(
    stage: WorkerStage, tmp_path: Path
) -> None:
    for _ in range(BACKLOG):
        stage.send("tests.support.worker_tasks.sleep", "low", kwargs={"seconds": 0.5}, known=False)
    backlog = stage.queue("low").messages
    assert backlog >= BACKLOG - 5, "the low worker takes one message at a time"

    sent_at = datetime.now(UTC)
    task_id = stage.send(
        "tests.support.worker_tasks.sleep_then_mark",
        "high",
        kwargs={"path": str(tmp_path / "trace"), "seconds": 0},
    )
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED})
    assert run.hostname is not None
    assert run.hostname.startswith("high-worker@")
    assert run.started_at is not None
    assert run.started_at - sent_at < timedelta(seconds=1)
    assert stage.queue("low").messages >= BACKLOG - 10, "the backlog is still waiting"
