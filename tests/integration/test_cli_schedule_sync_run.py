"""``schedule sync`` writes settings.toml to the store; ``schedule run`` sends one confirmed run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from kombu import Connection

from scheduling.flask.cli import queues, schedule
from scheduling.store import RunState, Store
from tests.support.beats import beat_settings_text, unique_queues

pytestmark = pytest.mark.integration

ENTRIES = """
[schedule.cli-ping]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1h"
queue = "{high}"
"""


@pytest.fixture
def settings_file(tmp_path: Path, broker_url: str) -> Iterator[Path]:
    names = unique_queues()
    path = tmp_path / "settings.toml"
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    path.write_text(beat_settings_text(database_url, broker_url, names, ENTRIES.format(**names)))
    runner = CliRunner()
    declared = runner.invoke(queues, ["declare", "--settings", str(path)])
    assert declared.exit_code == 0, declared.output
    yield path
    with Connection(broker_url) as connection:
        for queue in names.values():
            connection.default_channel.queue_delete(queue)


def test_sync_then_run_publishes_one_confirmed_manual_run(
    settings_file: Path, broker_url: str
) -> None:
    runner = CliRunner()
    synced = runner.invoke(schedule, ["sync", "--settings", str(settings_file), "--json"])
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.output)["created"] == ["cli-ping"]
    again = runner.invoke(schedule, ["sync", "--settings", str(settings_file)])
    assert "0 created, 0 updated, 0 pruned, 1 unchanged" in again.output

    ran = runner.invoke(schedule, ["run", "cli-ping", "--settings", str(settings_file)])
    assert ran.exit_code == 0, ran.output
    task_id = ran.output.strip()
    assert uuid.UUID(task_id)

    database_url = settings_file.read_text().split('database_url = "')[1].split('"')[0]
    with Store.open(database_url) as store:
        run = store.get_run(task_id)
    assert run is not None
    assert run.manual
    assert run.state is RunState.DISPATCHED
    queue = run.queue
    assert queue is not None
    with Connection(broker_url) as connection:
        message = connection.default_channel.basic_get(queue, no_ack=True)
    assert message is not None
    assert message.headers["id"] == task_id
    assert message.headers["periodic_entry"] == "cli-ping"


def test_run_of_an_unknown_entry_is_a_usage_error(settings_file: Path) -> None:
    result = CliRunner().invoke(schedule, ["run", "nope", "--settings", str(settings_file)])
    assert result.exit_code == 2
    assert "no entry 'nope'" in result.output
