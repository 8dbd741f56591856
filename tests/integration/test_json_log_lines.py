"""A real worker with `[app].log_format = "json"`: its log lines are JSON with the run's ids."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kombu import Connection

from scheduling.broker.publisher import ConfirmedPublisher, OutgoingRun
from scheduling.broker.topology import declare_topology
from scheduling.config.loading import load_settings
from tests.support.ledger import claim_like_beat
from tests.support.processes import celery_beat, celery_worker, clean_env

pytestmark = pytest.mark.integration

SETTINGS = """
[app]
log_format = "json"
database_url = "sqlite:///{database}"
[broker]
url = "{broker_url}"
[queues.{queue}]
default = true
"""


def test_worker_logs_one_json_object_per_line_with_task_entry_and_slot(
    tmp_path: Path, broker_url: str
) -> None:
    queue = f"json-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS.format(broker_url=broker_url, queue=queue, database=tmp_path / "p.db"))
    settings = load_settings(path)
    with Connection(broker_url) as connection:
        declare_topology(connection, settings)
    slot = datetime.now(UTC).replace(microsecond=0)
    run = OutgoingRun(
        task_id=str(uuid.uuid4()),
        task="scheduling.tasks.heartbeat.heartbeat",
        args=[],
        kwargs={},
        queue=queue,
        entry="ping",
        scheduled_for=slot,
        expires=slot + timedelta(hours=1),
    )
    claim_like_beat(settings.app.database_url.get_secret_value(), [run])
    worker = celery_worker(queue, tmp_path, clean_env({"PERIODIC_SETTINGS": str(path)}))
    publisher = ConfirmedPublisher.from_settings(settings.broker)
    try:
        worker.wait_for(r'"message": "[^"]*ready\.', timeout=60)
        publisher.publish([run])
        worker.wait_for(
            rf'"task_id": "{run.task_id}"[^\n]*succeeded|succeeded[^\n]*"task_id": "{run.task_id}"',
            30,
        )
    finally:
        publisher.close()
        worker.stop()
        with Connection(broker_url) as connection:
            connection.default_channel.queue_delete(queue)
    lines = [line for line in worker.output().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in parsed)
    succeeded = [line for line in parsed if "succeeded" in line["message"]]
    assert succeeded[0]["task_id"] == run.task_id
    assert succeeded[0]["entry"] == "ping"
    assert succeeded[0]["slot"] == slot.isoformat().replace("+00:00", "Z")


def test_beat_logs_json_lines_too(tmp_path: Path, broker_url: str) -> None:
    queue = f"json-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS.format(broker_url=broker_url, queue=queue, database=tmp_path / "p.db"))
    beat = celery_beat(tmp_path, clean_env({"PERIODIC_SETTINGS": str(path)}))
    try:
        beat.wait_for(r'"logger": "[^"]+", "message": "leading: took the beat lease', timeout=60)
    finally:
        beat.stop()
        with Connection(broker_url) as connection:
            connection.default_channel.queue_delete(queue)
    lines = [json.loads(line) for line in beat.output().splitlines() if line.startswith("{")]
    assert {"beat: Starting...", "leading: took the beat lease (token 1)"} <= {
        line["message"] for line in lines
    }
