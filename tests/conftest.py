"""Shared fixtures: the RabbitMQ the integration tests talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from project.localbroker import LocalRabbitNode, rabbitmq_server_available
from tests.brokers import provide_broker


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """AMQP URL of the session's broker (env URL, testcontainers or a local node; SPEC §10)."""
    with provide_broker(tmp_path_factory.mktemp("broker")) as url:
        yield url


@pytest.fixture
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitNode]:
    """A fresh, running node of this test's own, free to stop, kill and restart; stopped after.

    Never the session broker. Needs the Debian package rabbitmq-server (not Docker).
    """
    if not rabbitmq_server_available():
        pytest.fail(
            "this test stops and restarts a broker, so it needs a throwaway local node: "
            "apt-get install rabbitmq-server (the system service may stay stopped)",
            pytrace=False,
        )
    node = LocalRabbitNode(tmp_path_factory.mktemp("rabbit-node"))
    node.start()
    try:
        yield node
    finally:
        node.stop()
