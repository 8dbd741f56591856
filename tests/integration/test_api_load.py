"""Hundreds of parallel `POST /run`: every 202 is exactly one message in the queue, nothing else is.

The requests of one process are group-committed (`scheduling.operations.batcher`): the tests also
check
that they really were batched, and that one bad request does not spoil its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from kombu import Connection

from scheduling.config.settings import Settings
from scheduling.store import ManualRun, RunRecord, RunState, Store
from tests.support.api import (
    HEARTBEAT,
    WRITE,
    queue_names,
    services,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 300
PARALLEL = 64


def message_task_ids(settings: Settings, queue: str) -> list[str]:
    ids = []
    with Connection(settings.broker.url.get_secret_value()) as connection:
        channel: Any = connection.default_channel
        while (message := channel.basic_get(queue=queue, no_ack=True)) is not None:
            ids.append(message.headers["id"])
    return ids


def record_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the claim transactions run-now makes from now on."""
    sizes: list[int] = []
    claim = store.claim_manual_runs

    def recording(requests: Sequence[ManualRun], *, new_task_ids: bool = False) -> list[RunRecord]:
        sizes.append(len(requests))
        return claim(requests, new_task_ids=new_task_ids)

    monkeypatch.setattr(store, "claim_manual_runs", recording)
    return sizes


def test_every_accepted_run_is_exactly_one_message(
    api_app: Flask, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = queue_names(api_settings)["low"]
    batches = record_batches(services(api_app).store, monkeypatch)
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
    accepted = [task_id for status, task_id in results if status == 202 and task_id]
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
    assert sum(batches) == REQUESTS
    assert max(batches) > 1, "concurrent requests were not group-committed"


def test_a_request_for_an_unknown_entry_does_not_spoil_its_batch(
    api_app: Flask, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = queue_names(api_settings)["low"]
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": queue}
    assert (
        api_app.test_client().post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    )
    batches = record_batches(services(api_app).store, monkeypatch)

    def run_now(index: int) -> tuple[str, int, str | None]:
        name = "ghost" if index % 4 == 0 else "ping"
        response = api_app.test_client().post(f"/api/v1/schedules/{name}/run", headers=WRITE)
        task_id = response.get_json().get("task_id") if response.status_code == 202 else None
        return name, response.status_code, task_id

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(run_now, range(100)))

    assert {status for name, status, _ in results if name == "ghost"} == {404}
    assert {status for name, status, _ in results if name == "ping"} <= {202, 503}
    accepted = [task_id for _, status, task_id in results if status == 202 and task_id]
    assert len(accepted) >= 75 * 0.95
    assert sorted(message_task_ids(api_settings, queue)) == sorted(accepted)
    assert max(batches) > 1, "concurrent requests were not group-committed"
