"""A list of broker nodes: publishers and queue readers use whichever node answers.

Two independent brokers stand in for two nodes (connection fail-over does not need a cluster;
what a cluster adds, replicated queues, is tested in tests/faults/test_broker_cluster_failover.py):
this test's own throwaway node, which it kills, and the session broker. Queue names are unique,
so the session broker's other users never see these messages.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from project.devtools.localbroker import LocalRabbitNode, broker_answers
from scheduling.broker.pools import BrokerReader, PublisherPool
from scheduling.broker.publisher import BatchPublishError, ConfirmedPublisher
from scheduling.broker.topology import declarer
from scheduling.config.loading import load_settings
from scheduling.config.settings import Settings
from tests.support.records import outgoing_runs

pytestmark = pytest.mark.integration

SETTINGS = """
[broker]
url = [{nodes}]
connect_timeout = "2s"
[queues."{queue}"]
default = true
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(tmp_path: Path, nodes: list[str], queue: str) -> Settings:
    path = tmp_path / "settings.toml"
    listed = ", ".join(f'"{node}"' for node in nodes)
    path.write_text(SETTINGS.format(nodes=listed, queue=queue))
    return load_settings(path)


def delete_queues(url: str, settings: Settings) -> None:
    with Connection(url) as connection:
        for name in settings.queues:
            connection.default_channel.queue_delete(name)


def test_the_local_probe_accepts_any_answering_node(broker_url: str) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    assert broker_answers(f"{dead};{broker_url}", timeout=2.0)


def test_a_dead_first_node_is_skipped_by_publisher_pool_and_reader(
    tmp_path: Path, broker_url: str
) -> None:
    queue = f"failover-{uuid.uuid4().hex[:8]}"
    dead = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    settings = settings_for(tmp_path, [dead, broker_url], queue)
    pool, reader = PublisherPool(settings), BrokerReader(settings)
    try:
        pool.publish(outgoing_runs(queue, 5))
        status = reader.queue_status(queue)
        assert (status.exists, status.messages) == (True, 5)
    finally:
        pool.close()
        reader.close()
        delete_queues(broker_url, settings)


def test_publishers_and_reader_move_to_a_survivor_when_their_node_dies(
    tmp_path: Path, broker_url: str, rabbit_node: LocalRabbitNode
) -> None:
    queue = f"failover-{uuid.uuid4().hex[:8]}"
    settings = settings_for(tmp_path, [rabbit_node.url, broker_url], queue)
    publisher = ConfirmedPublisher.from_settings(settings.broker, declare=declarer(settings))
    reader, pool = BrokerReader(settings), PublisherPool(settings)
    try:
        publisher.publish(outgoing_runs(queue, 3))
        pool.publish(outgoing_runs(queue, 1))
        assert publisher.nodes.current == 0
        assert reader.queue_status(queue).messages == 4  # on the first node

        rabbit_node.kill()
        with pytest.raises(BatchPublishError) as caught:
            publisher.publish(outgoing_runs(queue, 3))  # the broken connection surfaces once
        assert "guest:guest" not in str(caught.value)
        second = outgoing_runs(queue, 4)
        publisher.publish(second)  # the caller's retry lands on the survivor, confirmed
        assert publisher.nodes.current == 1
        pool.publish(outgoing_runs(queue, 1))  # web: the stale connection is retried at once
        assert reader.queue_status(queue).messages == 5  # the reader moved over too
    finally:
        publisher.close()
        pool.close()
        reader.close()
        delete_queues(broker_url, settings)
