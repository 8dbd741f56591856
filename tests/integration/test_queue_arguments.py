"""Start-up against a broker whose queue was declared with other arguments fails fast and says
which queue and which values differ (RabbitMQ would otherwise answer 406 deep in a traceback)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from scheduling.broker.topology import declare_topology
from scheduling.config.loading import load_settings
from scheduling.errors import ConfigError
from tests.support.processes import ManagedProcess, clean_env

pytestmark = pytest.mark.integration

SETTINGS = """
[broker]
url = "{broker_url}"

[queues."{queue}"]
default = true
{queue_options}
"""


@pytest.fixture
def queue(broker_url: str) -> Iterator[str]:
    name = f"args-{uuid.uuid4().hex[:8]}"
    yield name
    with Connection(broker_url) as connection:
        channel = connection.channel()
        channel.queue_delete(name)
        channel.close()


def declare_by_hand(broker_url: str, queue: str, arguments: dict[str, Any]) -> None:
    with Connection(broker_url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments)
        channel.close()


def write(tmp_path: Path, broker_url: str, queue: str, options: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS.format(broker_url=broker_url, queue=queue, queue_options=options))
    return path


@pytest.mark.parametrize(
    ("existing", "options", "expected"),
    [
        (
            {"x-dead-letter-exchange": "periodic.dlx", "x-max-priority": 5},
            "max_priority = 10",
            ["x-max-priority", "'10'", "'5'"],
        ),
        (
            {"x-dead-letter-exchange": "periodic.dlx"},
            'message_ttl = "1m"',
            ["x-message-ttl", "'60000'", "none"],
        ),
        ({}, "", ["x-dead-letter-exchange", "periodic.dlx", "none"]),
    ],
)
def test_declaring_over_a_different_queue_names_the_queue_and_both_values(
    tmp_path: Path,
    broker_url: str,
    queue: str,
    existing: dict[str, Any],
    options: str,
    expected: list[str],
) -> None:
    declare_by_hand(broker_url, queue, existing)
    settings = load_settings(write(tmp_path, broker_url, queue, options))
    with Connection(broker_url) as connection, pytest.raises(ConfigError) as caught:
        declare_topology(connection, settings)
    message = str(caught.value)
    assert f"queues.{queue}" in message
    for fragment in expected:
        assert fragment in message


def test_matching_arguments_declare_again_without_complaint(
    tmp_path: Path, broker_url: str, queue: str
) -> None:
    settings = load_settings(
        write(tmp_path, broker_url, queue, 'max_priority = 10\nmessage_ttl = "1m"')
    )
    with Connection(broker_url) as connection:
        assert queue in declare_topology(connection, settings)
        assert queue in declare_topology(connection, settings)


def test_a_worker_refuses_to_start_on_a_mismatched_queue(
    tmp_path: Path, broker_url: str, queue: str
) -> None:
    declare_by_hand(broker_url, queue, {"x-dead-letter-exchange": "periodic.dlx"})
    path = write(tmp_path, broker_url, queue, "max_priority = 10")
    worker = ManagedProcess(
        "mismatch-worker",
        [sys.executable, "-m", "celery", "-A", "project.worker:celery_app", "worker", "-Q", queue],
        tmp_path,
        clean_env({"PERIODIC_SETTINGS": str(path)}),
    )
    try:
        code = worker.process.wait(timeout=60)
    finally:
        worker.stop()
    output = worker.output()
    assert code != 0
    assert f"queues.{queue}" in output
    assert "x-max-priority" in output
    assert "'10'" in output
