"""Run now (`POST /schedules/{name}/run`) and `GET /runs/{task_id}`: recorded like any other run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kombu import Connection

from scheduling.config.settings import Settings
from scheduling.store import RunState
from tests.support.api import (
    HEARTBEAT,
    READ,
    WRITE,
    queue_names,
    services,
)

pytestmark = pytest.mark.integration


def drain(settings: Settings, queue: str) -> list[Any]:
    """Every message now in `queue` (acknowledged, so the queue is empty after)."""
    messages = []
    with Connection(settings.broker.url.get_secret_value()) as connection:
        channel = connection.default_channel
        while True:
            message = channel.basic_get(queue=queue, no_ack=True)
            if message is None:
                return messages
            messages.append(message)


def test_run_now_answers_202_and_publishes_one_confirmed_message(
    client: FlaskClient, api_settings: Settings
) -> None:
    queue = queue_names(api_settings)["high"]
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": queue, "kwargs": {}}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    response = client.post("/api/v1/schedules/ping/run", headers=WRITE)
    assert response.status_code == 202
    task_id = response.get_json()["task_id"]
    assert response.headers["Location"] == f"/api/v1/runs/{task_id}"
    assert response.get_json()["run"] == f"/api/v1/runs/{task_id}"

    [message] = drain(api_settings, queue)
    headers = message.headers
    assert headers["id"] == task_id
    assert headers["task"] == HEARTBEAT
    assert headers["periodic_entry"] == "ping"
    assert json.loads(message.body)[:2] == [[], {}]

    run = client.get(f"/api/v1/runs/{task_id}", headers=READ).get_json()
    assert run["state"] == "dispatched"
    assert run["manual"] is True
    assert run["entry"] == "ping"
    assert run["queue"] == queue
    assert run["dispatched_at"].endswith("Z")
    assert run["started_at"] is None


def test_the_run_shows_in_the_entry_history_and_its_status(
    client: FlaskClient, api_app: Flask
) -> None:
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    task_ids = [
        client.post("/api/v1/schedules/ping/run", headers=WRITE).get_json()["task_id"]
        for _ in range(3)
    ]
    store = services(api_app).store
    started = datetime.now(UTC)
    store.record_run_started(task_ids[-1], "worker-1", started)
    store.record_run_finished(
        task_ids[-1], RunState.FAILED, started + timedelta(seconds=2),
        error_type="ValueError", error_message="boom",
    )  # fmt: skip

    run = client.get(f"/api/v1/runs/{task_ids[-1]}", headers=READ).get_json()
    assert run["state"] == "failed"
    assert run["hostname"] == "worker-1"
    assert run["runtime"] == pytest.approx(2.0)
    assert run["error"] == {"type": "ValueError", "message": "boom"}
    assert run["finished_at"] is not None

    page = client.get("/api/v1/schedules/ping/runs?limit=2", headers=READ).get_json()
    assert [item["task_id"] for item in page["items"]] == task_ids[::-1][:2]
    rest = client.get(f"/api/v1/schedules/ping/runs?before={page['next']}", headers=READ)
    assert [item["task_id"] for item in rest.get_json()["items"]] == [task_ids[0]]
    assert rest.get_json()["next"] is None

    status = client.get("/api/v1/schedules/ping", headers=READ).get_json()["status"]
    assert status["last_run"]["task_id"] == task_ids[-1]
    assert status["last_run"]["state"] == "failed"


def test_unknown_runs_and_entries_are_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/runs/0b8f6c3e-0000-4000-8000-000000000000", headers=READ)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert client.post("/api/v1/schedules/nope/run", headers=WRITE).status_code == 404


def test_a_paused_entry_can_still_be_run_by_hand(client: FlaskClient) -> None:
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    assert client.post("/api/v1/schedules/ping/pause", headers=WRITE).status_code == 200
    assert client.post("/api/v1/schedules/ping/run", headers=WRITE).status_code == 202
