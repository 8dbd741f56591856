"""settings.toml → stock Beat (static) → RabbitMQ queue → a worker consuming only that queue."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from scheduling.broker.topology import queue_status
from tests.support.processes import ManagedProcess, celery_beat, celery_worker, clean_env

pytestmark = pytest.mark.integration

SETTINGS = """
[broker]
url = "{broker_url}"

[queues.{high}]
priority = 9

[queues.{default}]
default = true

[queues.{low}]
priority = 1

[beat]
scheduler = "static"

[schedule.every-second]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
queue = "{high}"

[schedule.routed-low]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
expires = "never"  # nothing consumes low: keep the messages there to count them

[routes]
"scheduling.tasks.heartbeat.*" = "{low}"
"""


@pytest.fixture
def queues() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {name: f"{name}-{suffix}" for name in ("high", "default", "low")}


@pytest.fixture
def started(
    tmp_path: Path, broker_url: str, queues: dict[str, str]
) -> Iterator[list[ManagedProcess]]:
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS.format(broker_url=broker_url, **queues))
    env = clean_env({"PERIODIC_SETTINGS": str(settings)})
    processes = [celery_worker(queues["high"], tmp_path, env, name="high")]
    try:
        processes[0].wait_for(r"ready\.", timeout=60)
        processes.append(celery_beat(tmp_path, env))
        yield processes
    finally:
        for process in processes:
            process.stop()


def test_one_second_entry_runs_on_the_high_worker_and_low_is_left_alone(
    started: list[ManagedProcess], broker_url: str, queues: dict[str, str]
) -> None:
    worker, beat = started
    beat.wait_for(r"Sending due task every-second", timeout=30, count=2)
    worker.wait_for(
        r"Task scheduling\.tasks\.heartbeat\.heartbeat\[[0-9a-f-]+\] succeeded", timeout=30, count=2
    )
    deadline = time.monotonic() + 30
    with Connection(broker_url) as connection:
        while True:
            low = queue_status(connection, queues["low"])
            if low.messages >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        high = queue_status(connection, queues["high"])
    assert low.messages >= 2, "routed-low runs wait in the low queue"
    assert low.consumers == 0, "nothing consumes low"
    assert high.consumers == 1, "the high worker consumes high"
