"""`GET /queues` (depth, consumers, unattended queues) and `GET /beat` (leader, lease, lag)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kombu import Connection

from project.app import create_app
from scheduling.config.settings import Settings
from scheduling.store import BeatStatus
from tests.support.api import (
    HEARTBEAT,
    READ,
    WRITE,
    make_settings,
    queue_names,
    services,
)

pytestmark = pytest.mark.integration

CLOSED_PORT_BROKER = "amqp://guest:guest@127.0.0.1:9//"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'periodic.db'}"


def queues_by_name(client: FlaskClient) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/queues", headers=READ)
    assert response.status_code == 200, response.get_json()
    return {item["name"]: item for item in response.get_json()["items"]}


@pytest.fixture
def consumer(api_settings: Settings) -> Iterator[Any]:
    """Attach a consumer to a queue (like a worker would), detach after."""
    connection = Connection(api_settings.broker.url.get_secret_value())
    channel = connection.channel()

    def attach(queue: str) -> None:
        channel.basic_consume(queue=queue, callback=lambda message: None, no_ack=False)

    try:
        yield attach
    finally:
        channel.close()
        connection.release()


def test_queues_report_priority_depth_consumers_and_unattended_entries(
    client: FlaskClient, api_settings: Settings, consumer: Any
) -> None:
    names = queue_names(api_settings)
    queues = queues_by_name(client)
    assert list(queues) == list(api_settings.queues)
    high = queues[names["high"]]
    assert (high["priority"], high["type"]) == (9, "classic")
    assert high["exists"] is True
    assert (high["messages"], high["consumers"], high["routed_entries"]) == (0, 0, 0)
    assert high["unattended"] is False
    assert queues[names["default"]]["default"] is True

    body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": names["high"]}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    assert client.post("/api/v1/schedules/ping/run", headers=WRITE).status_code == 202
    high = queues_by_name(client)[names["high"]]
    assert (high["messages"], high["routed_entries"], high["unattended"]) == (1, 1, True)

    consumer(names["high"])
    deadline = time.monotonic() + 10
    while queues_by_name(client)[names["high"]]["consumers"] != 1:
        assert time.monotonic() < deadline, "the consumer never showed up"
        time.sleep(0.05)
    assert queues_by_name(client)[names["high"]]["unattended"] is False

    assert client.post("/api/v1/schedules/ping/pause", headers=WRITE).status_code == 200
    assert queues_by_name(client)[names["high"]]["routed_entries"] == 0


def test_queues_answer_503_when_the_broker_is_unreachable(store_url: str) -> None:
    app = create_app(make_settings(store_url, CLOSED_PORT_BROKER))
    try:
        started = time.monotonic()
        response = app.test_client().get("/api/v1/queues", headers=READ)
        assert time.monotonic() - started < 2
        assert response.status_code == 503
        assert response.mimetype == "application/problem+json"
        assert response.headers["Retry-After"]
    finally:
        services(app).close()


def test_beat_without_a_leader(client: FlaskClient, api_settings: Settings) -> None:
    body = client.get("/api/v1/beat", headers=READ).get_json()
    assert body == {
        "scheduler": "database",
        "leader": None,
        "lag": None,
        "lag_alert": api_settings.beat.lag_alert.total_seconds(),
        "beats": [],
    }


def test_beat_reports_leader_lease_and_lag(client: FlaskClient, api_app: Flask) -> None:
    store = services(api_app).store
    now = datetime.now(UTC)
    lease = store.acquire_lease("beat-a", timedelta(seconds=10), now)
    assert lease is not None
    store.record_beat(BeatStatus("beat-a", "host-a", 101, "leader", now, 0.25))
    store.record_beat(BeatStatus("beat-b", "host-b", 102, "standby", now, None))
    body = client.get("/api/v1/beat", headers=READ).get_json()
    assert body["leader"]["holder"] == "beat-a"
    assert body["leader"]["token"] == lease.token
    assert body["leader"]["live"] is True
    assert body["leader"]["expires_at"].endswith("Z")
    assert body["lag"] == 0.25
    assert [(b["beat_id"], b["role"]) for b in body["beats"]] == [
        ("beat-a", "leader"),
        ("beat-b", "standby"),
    ]
