"""200 parallel `POST /run`: every 202 is exactly one message in the queue, and nothing else is."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from kombu import Connection

from scheduling.settings import Settings
from scheduling.store import RunState
from tests.api_fixtures import (
    HEARTBEAT,
    WRITE,
    api_app,
    api_settings,
    client,
    queue_names,
    services,
)

__all__ = ["api_app", "api_settings", "client"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 200
PARALLEL = 32


def message_task_ids(settings: Settings, queue: str) -> list[str]:
    ids = []
    with Connection(settings.broker.url.get_secret_value()) as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue=queue, no_ack=True)) is not None:
            ids.append(message.headers["id"])
    return ids


def test_every_accepted_run_is_exactly_one_message(api_app: Flask, api_settings: Settings) -> None:
    queue = queue_names(api_settings)["low"]
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": queue}
    assert (
        api_app.test_client().post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    )

    def run_now(_: int) -> tuple[int, str | None]:
        response = api_app.test_client().post("/api/v1/schedules/ping/run", headers=WRITE)
        answer = response.get_json()
        return response.status_code, answer.get("task_id") if response.status_code == 202 else None

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(run_now, range(REQUESTS)))

    statuses = [status for status, _ in results]
    assert set(statuses) <= {202, 503}, statuses
    accepted = [task_id for status, task_id in results if status == 202]
    assert len(accepted) >= REQUESTS * 0.95, f"only {len(accepted)} of {REQUESTS} accepted"
    assert len(set(accepted)) == len(accepted)

    in_queue = message_task_ids(api_settings, queue)
    assert len(in_queue) == len(set(in_queue)), "a task id was published twice"
    assert sorted(in_queue) == sorted(accepted)

    runs = services(api_app).store.runs_for_entry("ping", limit=REQUESTS + 10)
    dispatched = {run.task_id for run in runs if run.state == RunState.DISPATCHED}
    assert dispatched == set(accepted)
    revoked = [run for run in runs if run.state == RunState.REVOKED]
    assert len(revoked) == statuses.count(503)
