"""Quorum queues on a real RabbitMQ: what is declared, and the tested way to change a queue's type.

A node of this module's own: declaring quorum dead-letter queues on the session broker would
clash with the classic ``periodic.dead`` that every other test declares there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kombu import Connection

from project.app import create_app
from project.devtools.localbroker import LocalRabbitNode, rabbitmq_server_available
from scheduling.broker.publisher import ConfirmedPublisher
from scheduling.broker.topology import declare_topology, declarer, queue_status
from scheduling.config.compiler import queue_arguments
from scheduling.config.loading import load_settings
from scheduling.config.settings import Settings
from scheduling.errors import ConfigError
from scheduling.flask.cli import queues
from tests.support.api import READ, make_settings
from tests.support.records import outgoing_runs

pytestmark = pytest.mark.integration

SETTINGS = """
[broker]
url = "{url}"
[queues."{queue}"]
type = "{queue_type}"
default = true
[worker]
max_deliveries = 5
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitNode]:
    if not rabbitmq_server_available():
        pytest.fail("needs the Debian package rabbitmq-server for a node of its own")
    with LocalRabbitNode(tmp_path_factory.mktemp("quorum-node")) as started:
        yield started


def settings_for(tmp_path: Path, url: str, queue: str, queue_type: str) -> Settings:
    path = tmp_path / f"{queue}-{queue_type}.toml"
    path.write_text(SETTINGS.format(url=url, queue=queue, queue_type=queue_type))
    return load_settings(path)


def declared(node: LocalRabbitNode) -> dict[str, dict[str, Any]]:
    result = node.rabbitmqctl(
        "list_queues", "name", "type", "arguments", "--formatter", "json", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_a_quorum_queue_is_declared_with_its_limit_and_takes_confirmed_messages(
    tmp_path: Path, node: LocalRabbitNode
) -> None:
    queue = f"qq-{uuid.uuid4().hex[:8]}"
    settings = settings_for(tmp_path, node.url, queue, "quorum")
    publisher = ConfirmedPublisher.from_settings(settings.broker, declare=declarer(settings))
    try:
        publisher.publish(outgoing_runs(queue, 10))
    finally:
        publisher.close()
    queues = declared(node)
    assert queues[queue]["type"] == "quorum"
    arguments = {name: value for name, _type, value in queues[queue]["arguments"]}
    assert arguments["x-delivery-limit"] == 4
    assert arguments["x-dead-letter-strategy"] == "at-least-once"
    assert arguments["x-overflow"] == "reject-publish"
    with Connection(node.url) as connection:  # list_queues' counts lag; a passive declare not
        assert queue_status(connection, queue).messages == 10
    assert queues["periodic.dead"]["type"] == "quorum"
    assert queues["periodic.dead.ledger"]["type"] == "quorum"


def test_the_cli_and_the_api_say_which_queues_are_quorum(
    tmp_path: Path, node: LocalRabbitNode
) -> None:
    queue = f"qq-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "settings.toml"
    database = f'[app]\ndatabase_url = "sqlite:///{tmp_path / "periodic.db"}"\n'
    path.write_text(database + SETTINGS.format(url=node.url, queue=queue, queue_type="quorum"))
    runner = CliRunner()
    assert runner.invoke(queues, ["declare", "--settings", str(path)]).exit_code == 0
    shown = runner.invoke(queues, ["status", "--json", "--settings", str(path)])
    assert shown.exit_code == 0, shown.output
    types = {row["name"]: row["type"] for row in json.loads(shown.output)}
    assert types == {queue: "quorum", "periodic.dead": "quorum", "periodic.dead.ledger": "quorum"}

    settings = make_settings(
        f"sqlite:///{tmp_path / 'periodic.db'}",
        node.url,
        queues={queue: {"type": "quorum", "default": True}},
    )
    listed = create_app(settings).test_client().get("/api/v1/queues", headers=READ)
    assert listed.status_code == 200, listed.get_json()
    assert [(item["name"], item["type"]) for item in listed.get_json()["items"]] == [
        (queue, "quorum")
    ]


def test_changing_a_queues_type_is_refused_until_it_is_drained_and_deleted(
    tmp_path: Path, node: LocalRabbitNode
) -> None:
    queue = f"migrate-{uuid.uuid4().hex[:8]}"
    classic = settings_for(tmp_path, node.url, queue, "classic")
    with Connection(node.url) as connection:  # as a classic Periodic queue is declared
        arguments = queue_arguments(queue, classic)
        connection.default_channel.queue_declare(
            queue, durable=True, auto_delete=False, arguments=arguments
        )
    publisher = ConfirmedPublisher(node.url, exchange="")  # the default exchange: by name
    try:
        publisher.publish(outgoing_runs(queue, 2))  # work still waiting in the old queue
    finally:
        publisher.close()

    quorum = settings_for(tmp_path, node.url, queue, "quorum")
    with Connection(node.url) as connection, pytest.raises(ConfigError) as caught:
        declare_topology(connection, quorum)
    message = str(caught.value)
    assert f"queues.{queue}" in message
    assert "inequivalent arg" in message  # RabbitMQ names the first argument that differs
    assert f"rabbitmqctl delete_queue {queue} --if-empty" in message

    # The documented procedure, step by step: deleting refuses while messages wait, ...
    refused = node.rabbitmqctl("delete_queue", queue, "--if-empty")
    assert refused.returncode != 0
    with Connection(node.url) as connection:  # ... workers drain the queue, ...
        channel = connection.default_channel
        while channel.basic_get(queue, no_ack=True) is not None:
            pass
    deleted = node.rabbitmqctl("delete_queue", queue, "--if-empty")  # ... then it goes, ...
    assert deleted.returncode == 0, deleted.stderr
    with Connection(node.url) as connection:  # ... and the next start declares it anew.
        assert queue in declare_topology(connection, quorum)
    assert declared(node)[queue]["type"] == "quorum"
