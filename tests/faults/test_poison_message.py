"""A message that kills its worker on every delivery ends in the dead-letter queue.

Classic queues have no delivery limit, so the worker counts deliveries in the store and, past
``worker.max_deliveries``, rejects the message without requeue. A quorum queue counts itself
(``x-delivery-limit``) and dead-letters the message; the worker then writes no counter. Runs on a
broker of its own so the shared ``periodic.dead`` queue can be inspected.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from project.devtools.localbroker import LocalRabbitNode
from scheduling.config.compiler import DEAD_LETTER_QUEUE
from scheduling.store import RunState
from tests.support.worker_stage import WorkerStage, trace_events, worker_stage

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(params=["classic", "quorum"])
def stage(
    request: pytest.FixtureRequest, tmp_path: Path, rabbit_node: LocalRabbitNode
) -> Iterator[WorkerStage]:
    with worker_stage(tmp_path, rabbit_node.url, roles=("default",), queue_type=request.param) as s:
        s.start_worker("default", "victim")
        yield s


def counted_deliveries(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM periodic_deliveries").fetchone()[0])


def test_a_poison_message_is_dead_lettered_after_max_deliveries(
    stage: WorkerStage, tmp_path: Path
) -> None:
    quorum = stage.settings.queues[stage.queues["default"]].type == "quorum"
    trace = tmp_path / "trace"
    max_deliveries = stage.settings.worker.max_deliveries
    task_id = stage.send(
        "tests.support.worker_tasks.kill_own_process", "default", kwargs={"path": str(trace)}
    )

    run = stage.wait_for_run(task_id, {RunState.FAILED, RunState.SUCCEEDED}, timeout=120)
    assert run.state is RunState.FAILED
    assert run.error_type == "DeliveryLimitExceeded"
    assert run.error_message is not None
    assert trace_events(trace) == ["start"] * max_deliveries, "ran exactly max_deliveries times"
    if quorum:
        assert "dead-lettered by quorum queue" in run.error_message
        assert counted_deliveries(tmp_path / "periodic.db") == 0, "the broker counted, not us"
    else:
        assert f"delivered {max_deliveries + 1} times" in run.error_message

    stage.wait_for_queue("default", messages=0)
    with Connection(stage.broker_url) as connection:
        channel = connection.channel()
        dead = channel.basic_get(DEAD_LETTER_QUEUE, no_ack=True)
        channel.close()
    assert dead is not None, "the message waits in periodic.dead"
    headers = dead.headers
    assert headers["id"] == task_id
    assert headers["x-first-death-reason"] == ("delivery_limit" if quorum else "rejected")
    assert headers["x-first-death-queue"] == stage.queues["default"]
    assert stage.workers[0].process.poll() is None, "the worker itself survived"
