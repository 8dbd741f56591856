"""A run whose message expired while no worker listened is not executed; the ledger says expired.

Two ways a message expires: beat's publisher puts the deadline in the Celery ``expires`` header
(the worker discards the message when it finally arrives), and Celery's own ``apply_async`` also
sets an AMQP TTL (the broker drops the message into the dead-letter exchange; the worker's
dead-letter consumer closes the run). Both are exercised here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduling.broker.publisher import ConfirmedPublisher, OutgoingRun
from scheduling.store import RunState
from tests.support.worker_stage import WorkerStage, trace_events, worker_stage

pytestmark = pytest.mark.integration

EXPIRES = timedelta(seconds=1)
TASK = "tests.support.worker_tasks.sleep_then_mark"


@pytest.fixture
def stage(tmp_path: Path, broker_url: str) -> Iterator[WorkerStage]:
    with worker_stage(tmp_path, broker_url, roles=("default",)) as s:
        yield s


def publish_like_beat(stage: WorkerStage, trace: Path, expires: datetime) -> str:
    task_id = stage.claim_run(TASK, "default")
    run = stage.store.get_run(task_id)
    assert run is not None
    publisher = ConfirmedPublisher.from_settings(stage.settings.broker)
    try:
        publisher.publish(
            [
                OutgoingRun(
                    task_id=task_id,
                    task=TASK,
                    args=[],
                    kwargs={"path": str(trace), "seconds": 0},
                    queue=stage.queues["default"],
                    entry=run.entry,
                    scheduled_for=run.scheduled_for,
                    expires=expires,
                )
            ]
        )
    finally:
        publisher.close()
    stage.store.mark_dispatched([task_id], datetime.now(UTC))
    return task_id


def test_runs_older_than_expires_are_not_executed_and_the_ledger_says_expired(
    stage: WorkerStage, tmp_path: Path
) -> None:
    stale_trace, fresh_trace = tmp_path / "stale", tmp_path / "fresh"
    deadline = datetime.now(UTC) + EXPIRES
    by_beat = [publish_like_beat(stage, stale_trace, deadline) for _ in range(2)]
    by_celery = [
        stage.send(
            TASK,
            "default",
            kwargs={"path": str(stale_trace), "seconds": 0},
            expires=EXPIRES.total_seconds(),
        )
        for _ in range(2)
    ]
    # The workers are down for longer than `expires`: nothing to wait on but the clock.
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.3)
    fresh = stage.send(TASK, "default", kwargs={"path": str(fresh_trace), "seconds": 0})
    stage.start_worker("default", "late-worker")

    stage.wait_for_run(fresh, {RunState.SUCCEEDED})
    for task_id in by_beat + by_celery:
        run = stage.wait_for_run(task_id, {RunState.EXPIRED})
        assert run.started_at is None
        assert run.error_message is not None
        assert "expired" in run.error_message
    assert trace_events(stale_trace) == []
    assert trace_events(fresh_trace) == ["start", "done"]
    stage.wait_for_queue("default", messages=0)
