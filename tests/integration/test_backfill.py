"""Backfill: each past slot that never ran is dispatched exactly once, on a real broker.

Two identical backfills must put each slot's message on the queue once; slots already in the
ledger (dispatched, succeeded, ...) are skipped, missed ones are run; windows past the cap, in
the future or backwards change nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from kombu import Connection

from project.app import create_app
from scheduling.flask.cli import queues, schedule
from scheduling.store import RunState, SlotClaim, Store
from scheduling.timing.slots import slot_task_id
from tests.support.api import (
    HEARTBEAT,
    READ,
    WRITE,
    make_settings,
    queue_names,
    services,
    temporary_queues,
)
from tests.support.beats import beat_settings_text, unique_queues

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


@pytest.fixture
def backfill_app(store_url: str, broker_url: str) -> Iterator[tuple[FlaskClient, Any]]:
    beat = {"scheduler": "database", "max_backfill": 6}
    settings = make_settings(store_url, broker_url, beat=beat)
    with temporary_queues(settings):
        app = create_app(settings)
        app.config["TESTING"] = True
        try:
            yield app.test_client(), settings
        finally:
            services(app).close()


def drain(broker_url: str, queue: str, expected: int) -> list[str]:
    """Task ids of the messages on `queue`: waits (with a deadline) for `expected`, then empties."""
    task_ids: list[str] = []
    deadline = time.monotonic() + 10
    with Connection(broker_url) as connection:
        channel = connection.default_channel
        while time.monotonic() < deadline:
            message = channel.basic_get(queue, no_ack=True)
            if message is not None:
                task_ids.append(message.headers["id"])
            elif len(task_ids) >= expected:
                break
            else:
                time.sleep(0.05)
    return task_ids


def past_hours(count: int) -> tuple[datetime, datetime, list[datetime]]:
    """A window holding the last `count` whole hours (the `every = "1h"` slots)."""
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    slots = [top - HOUR * offset for offset in range(count - 1, -1, -1)]
    return slots[0] - timedelta(minutes=1), slots[-1], slots


def post_backfill(client: FlaskClient, name: str, **body: Any) -> Any:
    return client.post(f"/api/v1/schedules/{name}/backfill", json=body, headers=WRITE)


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def test_two_identical_backfills_dispatch_each_slot_once(
    backfill_app: tuple[FlaskClient, Any], broker_url: str
) -> None:
    client, settings = backfill_app
    created = client.post(
        "/api/v1/schedules",
        json={"name": "hourly", "task": HEARTBEAT, "every": "1h"},
        headers=WRITE,
    )
    assert created.status_code == 201
    start, end, slots = past_hours(4)
    window = {"from": iso(start), "to": iso(end)}

    dry = post_backfill(client, "hourly", dry_run=True, **window)
    assert dry.status_code == 200
    assert [slot["action"] for slot in dry.get_json()["slots"]] == ["dispatch"] * 4
    assert drain(broker_url, queue_names(settings)["default"], 0) == []

    first = post_backfill(client, "hourly", **window)
    second = post_backfill(client, "hourly", **window)

    assert first.status_code == second.status_code == 202
    assert (first.get_json()["dispatched"], first.get_json()["skipped"]) == (4, 0)
    assert (second.get_json()["dispatched"], second.get_json()["skipped"]) == (0, 4)
    assert [slot["state"] for slot in second.get_json()["slots"]] == ["dispatched"] * 4
    expected = [slot_task_id("hourly", slot) for slot in slots]
    assert [slot["task_id"] for slot in first.get_json()["slots"]] == expected
    assert sorted(drain(broker_url, queue_names(settings)["default"], 4)) == sorted(expected)

    history = client.get("/api/v1/schedules/hourly/history", headers=READ).get_json()["items"]
    backfills = [item for item in history if item["action"] == "backfill"]
    assert [item["details"]["claimed"] for item in backfills] == [0, 4]
    assert {item["actor"] for item in backfills} == {"token:writer"}


def test_missed_slots_run_and_finished_ones_are_skipped(
    backfill_app: tuple[FlaskClient, Any], broker_url: str
) -> None:
    client, settings = backfill_app
    client.post(
        "/api/v1/schedules",
        json={"name": "hourly", "task": HEARTBEAT, "every": "1h"},
        headers=WRITE,
    )
    start, end, slots = past_hours(3)
    store: Store = services(client.application).store
    lease = store.acquire_lease("test-beat", timedelta(seconds=30), datetime.now(UTC))
    assert lease is not None
    missed = SlotClaim("hourly", slots[0], slot_task_id("hourly", slots[0]), RunState.MISSED)
    ran = SlotClaim("hourly", slots[1], slot_task_id("hourly", slots[1]), RunState.PENDING)
    store.claim_slots([missed, ran], holder=lease.holder, token=lease.token, next_runs={})
    store.record_run_finished(ran.task_id, RunState.SUCCEEDED, datetime.now(UTC))

    body = post_backfill(client, "hourly", **{"from": iso(start), "to": iso(end)}).get_json()

    assert [(slot["action"], slot["state"]) for slot in body["slots"]] == [
        ("dispatch", "missed"),
        ("skip", "succeeded"),
        ("dispatch", None),
    ]
    assert body["dispatched"] == 2
    reopened = store.get_run(missed.task_id)
    assert reopened is not None
    assert reopened.state is RunState.DISPATCHED
    assert sorted(drain(broker_url, queue_names(settings)["default"], 2)) == sorted(
        [missed.task_id, slot_task_id("hourly", slots[2])]
    )


@pytest.mark.parametrize(
    ("window", "path", "message"),
    [
        ({"hours": 8}, "from", "the window holds 8 slots, more than beat.max_backfill (6)"),
        ({"hours": 2, "future": True}, "to", "must not be in the future"),
        ({"hours": 2, "backwards": True}, "to", "must not be before from"),
    ],
)
def test_bad_windows_are_422_and_dispatch_nothing(
    backfill_app: tuple[FlaskClient, Any],
    broker_url: str,
    window: dict[str, Any],
    path: str,
    message: str,
) -> None:
    client, settings = backfill_app
    client.post(
        "/api/v1/schedules",
        json={"name": "hourly", "task": HEARTBEAT, "every": "1h"},
        headers=WRITE,
    )
    start, end, _ = past_hours(window["hours"])
    if window.get("future"):
        end = datetime.now(UTC) + HOUR
    if window.get("backwards"):
        start, end = end, start

    response = post_backfill(client, "hourly", **{"from": iso(start), "to": iso(end)})

    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert [error["path"] for error in errors] == [path]
    assert message in errors[0]["message"]
    assert drain(broker_url, queue_names(settings)["default"], 0) == []


def test_unknown_entry_missing_fields_and_read_tokens(
    backfill_app: tuple[FlaskClient, Any],
) -> None:
    client, _ = backfill_app
    window = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T05:00:00Z"}
    assert post_backfill(client, "nope", **window).status_code == 404
    missing = post_backfill(client, "nope", to="2026-01-01T05:00:00Z")
    assert missing.status_code == 422
    assert [error["path"] for error in missing.get_json()["errors"]] == ["from"]
    read_only = client.post("/api/v1/schedules/nope/backfill", json=window, headers=READ)
    assert read_only.status_code == 403


ENTRIES = """
[schedule.cli-hourly]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1h"
queue = "{high}"
"""


@pytest.fixture
def settings_file(tmp_path: Path, broker_url: str) -> Iterator[tuple[Path, dict[str, str]]]:
    names = unique_queues()
    path = tmp_path / "settings.toml"
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    path.write_text(beat_settings_text(database_url, broker_url, names, ENTRIES.format(**names)))
    declared = CliRunner().invoke(queues, ["declare", "--settings", str(path)])
    assert declared.exit_code == 0, declared.output
    yield path, names
    with Connection(broker_url) as connection:
        for queue in names.values():
            connection.default_channel.queue_delete(queue)


def test_cli_backfill_twice_dispatches_once_and_names_the_user(
    settings_file: tuple[Path, dict[str, str]], broker_url: str
) -> None:
    path, names = settings_file
    runner = CliRunner()
    assert runner.invoke(schedule, ["sync", "--settings", str(path)]).exit_code == 0
    start, end, slots = past_hours(3)
    command = ["backfill", "cli-hourly", "--from", iso(start), "--to", iso(end)]

    dry = runner.invoke(schedule, [*command, "--dry-run", "--settings", str(path)])
    first = runner.invoke(schedule, [*command, "--json", "--settings", str(path)])
    second = runner.invoke(schedule, [*command, "--settings", str(path)])

    assert dry.exit_code == 0, dry.output
    assert "3 slot(s), 3 would run, 0 skipped" in dry.output
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["dispatched"] == 3
    assert second.exit_code == 0, second.output
    assert "3 slot(s), 0 dispatched, 3 skipped" in second.output
    expected = sorted(slot_task_id("cli-hourly", slot) for slot in slots)
    assert sorted(drain(broker_url, names["high"], 3)) == expected

    database_url = path.read_text().split('database_url = "')[1].split('"')[0]
    with Store.open(database_url) as store:
        actors = {record.actor for record in store.entry_history("cli-hourly")}
    assert any(actor.startswith("cli") for actor in actors)
    assert any(actor.startswith("settings:") for actor in actors)


def test_cli_backfill_refuses_a_future_window(settings_file: tuple[Path, dict[str, str]]) -> None:
    path, _ = settings_file
    runner = CliRunner()
    runner.invoke(schedule, ["sync", "--settings", str(path)])
    later = iso(datetime.now(UTC) + HOUR)
    result = runner.invoke(
        schedule,
        ["backfill", "cli-hourly", "--from", "2026-01-01T00:00:00Z", "--to", later,
         "--settings", str(path)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "--to: must not be in the future" in result.output
