"""Broker down: `POST /run` answers 503 within 2 s with a problem, never 202, and recovers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kombu import Connection

from project.app import create_app
from project.devtools.localbroker import LocalRabbitNode
from scheduling.broker.topology import declare_topology
from scheduling.store import RunState
from tests.support.api import HEARTBEAT, READ, WRITE, make_settings, services

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOUND = 2.0


@pytest.fixture
def node_app(rabbit_node: LocalRabbitNode, tmp_path: Path) -> Iterator[Flask]:
    settings = make_settings(f"sqlite:///{tmp_path / 'periodic.db'}", rabbit_node.url)
    with Connection(rabbit_node.url) as connection:
        declare_topology(connection, settings)  # the node is thrown away: no clean-up
    app = create_app(settings)
    try:
        yield app
    finally:
        services(app).close()


def run_now(client: FlaskClient) -> tuple[int, float, dict[str, object]]:
    started = time.monotonic()
    response = client.post("/api/v1/schedules/ping/run", headers=WRITE)
    return response.status_code, time.monotonic() - started, response.get_json()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_run_answers_503_quickly_while_the_broker_is_down(
    node_app: Flask, rabbit_node: LocalRabbitNode, how: str
) -> None:
    client = node_app.test_client()
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    status, _, _ = run_now(client)
    assert status == 202  # a live, pooled connection that is about to go stale

    rabbit_node.stop() if how == "stop" else rabbit_node.kill()
    for _ in range(3):
        response = client.post("/api/v1/schedules/ping/run", headers=WRITE)
        status, elapsed, problem = run_now(client)
        assert status == 503, problem
        assert elapsed < BOUND
        assert response.status_code == 503
        assert response.mimetype == "application/problem+json"
        assert response.headers["Retry-After"]
        assert problem["title"] == "Broker unavailable"

    runs = services(node_app).store.runs_for_entry("ping", limit=100)
    assert [run.state for run in runs].count(RunState.DISPATCHED) == 1
    assert {run.state for run in runs[:-1]} == {RunState.REVOKED}
    history = client.get("/api/v1/schedules/ping/runs", headers=READ).get_json()["items"]
    assert history[0]["error"]["type"]


def test_run_recovers_when_the_broker_is_back(
    node_app: Flask, rabbit_node: LocalRabbitNode
) -> None:
    client = node_app.test_client()
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    assert run_now(client)[0] == 202
    rabbit_node.stop()
    assert run_now(client)[0] == 503
    rabbit_node.start()
    status, elapsed, answer = run_now(client)
    assert status == 202, answer
    assert elapsed < BOUND


def test_run_now_on_a_fresh_broker_declares_the_topology_itself(
    rabbit_node: LocalRabbitNode, tmp_path: Path
) -> None:
    """No worker or beat ever started on this node: the web process declares what it needs."""
    settings = make_settings(f"sqlite:///{tmp_path / 'periodic.db'}", rabbit_node.url)
    app = create_app(settings)
    try:
        client = app.test_client()
        body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
        assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
        status, _, answer = run_now(client)
        assert status == 202, answer
        with Connection(rabbit_node.url) as connection:
            declared = connection.default_channel.queue_declare(
                settings.default_queue, passive=True
            )
        assert declared.message_count == 1
    finally:
        services(app).close()
