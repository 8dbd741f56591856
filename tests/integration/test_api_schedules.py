"""`/api/v1/schedules`: every route's happy path and each error status, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.operations import entries as operations
from tests.support.api import (
    HEARTBEAT,
    READ,
    WRITE,
    queue_names,
    services,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def create(client: FlaskClient, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "task": HEARTBEAT, "every": "30s", **fields}
    response = client.post("/api/v1/schedules", json=body, headers=WRITE)
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def problem_paths(response: Any) -> list[str]:
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return [error["path"] for error in response.get_json()["errors"]]


def add_config_entry(app: Flask, name: str) -> None:
    store = services(app).store
    entry = ScheduleEntry(task=HEARTBEAT, cron="0 8 * * *")
    store.sync_config({name: entry}, {name: datetime.now(UTC) + timedelta(hours=1)})


def test_create_answers_201_with_the_definition_and_its_status(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/schedules",
        json={"name": "ping", "task": HEARTBEAT, "every": "1h30m", "timezone": "Asia/Tokyo"},
        headers=WRITE,
    )
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/v1/schedules/ping"
    body = response.get_json()
    assert body["name"] == "ping"
    assert body["every"] == "1h30m"
    assert body["task"] == HEARTBEAT
    status = body["status"]
    assert status["source"] == "api"
    assert status["paused"] is False
    assert status["late"] is False
    assert status["total_runs"] == 0
    assert status["last_run"] is None
    assert status["timezone"] == "Asia/Tokyo"
    assert status["next_run_at"].endswith("Z")
    assert status["next_run_local"].endswith("+09:00")
    next_utc = datetime.fromisoformat(status["next_run_at"])
    assert next_utc == datetime.fromisoformat(status["next_run_local"])
    assert next_utc > datetime.now(UTC)


def test_a_fetched_body_can_be_sent_back_unchanged(client: FlaskClient) -> None:
    created = create(client, "roundtrip", queue=None, kwargs={})
    response = client.put("/api/v1/schedules/roundtrip", json=created, headers=WRITE)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"]["version"] > created["status"]["version"]


def test_create_refuses_a_taken_name_with_409(client: FlaskClient, api_app: Flask) -> None:
    create(client, "ping")
    response = client.post(
        "/api/v1/schedules", json={"name": "ping", "task": HEARTBEAT, "cron": "* * * * *"},
        headers=WRITE,
    )  # fmt: skip
    assert response.status_code == 409
    assert response.mimetype == PROBLEM
    add_config_entry(api_app, "from-file")
    response = client.post(
        "/api/v1/schedules", json={"name": "from-file", "task": HEARTBEAT, "every": "1m"},
        headers=WRITE,
    )  # fmt: skip
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"every": "30 seconds"}, "every"),
        ({"every": None, "cron": "61 * * * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"queue": "nowhere"}, "queue"),
        ({"task": "scheduling.tasks.heartbeat.heartbeet"}, "task"),
        ({"args": [1, 2]}, "args"),
        ({"kwargs": {"unexpected": 1}}, "kwargs"),
        ({"cron": "* * * * *"}, ""),
        ({"colour": "blue"}, "colour"),
        ({"name": "bad name!"}, "name"),
        ({"max_runs": 0}, "max_runs"),
    ],
)
def test_invalid_definitions_answer_422_naming_the_field_and_change_nothing(
    client: FlaskClient, fields: dict[str, Any], path: str
) -> None:
    body = {"name": "broken", "task": HEARTBEAT, "every": "30s", **fields}
    response = client.post("/api/v1/schedules", json=body, headers=WRITE)
    assert path in problem_paths(response)
    name = body["name"]
    assert client.get(f"/api/v1/schedules/{name}", headers=READ).status_code == 404


def test_the_task_error_suggests_the_registered_name(client: FlaskClient) -> None:
    body = {"name": "typo", "task": "scheduling.tasks.heartbeat.heartbeet", "every": "1m"}
    response = client.post("/api/v1/schedules", json=body, headers=WRITE)
    [error] = response.get_json()["errors"]
    assert error["path"] == "task"
    assert "did you mean 'scheduling.tasks.heartbeat.heartbeat'" in error["message"]


def test_a_body_that_is_not_a_json_object_is_refused(client: FlaskClient) -> None:
    response = client.post("/api/v1/schedules", data="name=x", headers=WRITE)
    assert response.status_code == 415
    assert response.mimetype == PROBLEM
    response = client.post("/api/v1/schedules", json=[1, 2], headers=WRITE)
    assert problem_paths(response) == [""]
    response = client.post(
        "/api/v1/schedules", data="{not json", content_type="application/json", headers=WRITE
    )
    assert problem_paths(response) == [""]


def test_get_unknown_entry_is_a_404_problem(client: FlaskClient) -> None:
    response = client.get("/api/v1/schedules/nope", headers=READ)
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert response.get_json()["status"] == 404


def test_list_pages_by_name_with_a_cursor(client: FlaskClient) -> None:
    for index in range(5):
        create(client, f"entry-{index}")
    first = client.get("/api/v1/schedules?limit=2", headers=READ).get_json()
    assert [item["name"] for item in first["items"]] == ["entry-0", "entry-1"]
    second = client.get(f"/api/v1/schedules?limit=2&after={first['next']}", headers=READ)
    assert [item["name"] for item in second.get_json()["items"]] == ["entry-2", "entry-3"]
    last = client.get("/api/v1/schedules?limit=2&after=entry-3", headers=READ).get_json()
    assert [item["name"] for item in last["items"]] == ["entry-4"]
    assert last["next"] is None


def test_list_filters_by_source_enabled_and_queue(
    client: FlaskClient, api_app: Flask, api_settings: Settings
) -> None:
    queues = queue_names(api_settings)
    create(client, "a-high", queue=queues["high"])
    create(client, "b-off", enabled=False)
    add_config_entry(api_app, "c-file")

    def names(query: str) -> list[str]:
        response = client.get(f"/api/v1/schedules?{query}", headers=READ)
        assert response.status_code == 200, response.get_json()
        return [item["name"] for item in response.get_json()["items"]]

    assert names("") == ["a-high", "b-off", "c-file"]
    assert names("source=config") == ["c-file"]
    assert names("source=api") == ["a-high", "b-off"]
    assert names("enabled=false") == ["b-off"]
    assert names(f"queue={queues['high']}") == ["a-high"]
    assert names(f"queue={queues['default']}&limit=1") == ["b-off"]
    assert problem_paths(client.get("/api/v1/schedules?limit=0", headers=READ)) == ["limit"]
    assert problem_paths(client.get("/api/v1/schedules?source=x", headers=READ)) == ["source"]


def test_list_by_queue_follows_the_settings_routes(
    client: FlaskClient, api_app: Flask, api_settings: Settings
) -> None:
    """The queue filter runs in SQL, yet a route (a glob, first match wins) decides the queue
    of an entry that names none, as it does for its messages."""
    queues = queue_names(api_settings)
    create(client, "a-own", queue=queues["low"])
    create(client, "b-routed")
    routed = api_settings.model_copy(update={"routes": {"scheduling.tasks.heart*": queues["low"]}})
    store = services(api_app).store
    page, cursor = operations.list_entries(store, routed, queue=queues["low"], limit=1)
    assert ([record.name for record in page], cursor) == (["a-own"], "a-own")
    page, cursor = operations.list_entries(store, routed, queue=queues["low"], after="a-own")
    assert ([record.name for record in page], cursor) == (["b-routed"], None)
    unrouted, _ = operations.list_entries(store, api_settings, queue=queues["low"])
    assert [record.name for record in unrouted] == ["a-own"]


def test_put_replaces_and_creates(client: FlaskClient) -> None:
    create(client, "ping")
    response = client.put(
        "/api/v1/schedules/ping", json={"task": HEARTBEAT, "cron": "*/5 * * * *"}, headers=WRITE
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["cron"] == "*/5 * * * *"
    assert "every" not in body
    response = client.put(
        "/api/v1/schedules/fresh", json={"task": HEARTBEAT, "every": "1m"}, headers=WRITE
    )
    assert response.status_code == 201
    response = client.put(
        "/api/v1/schedules/ping", json={"name": "pong", "task": HEARTBEAT, "every": "1m"},
        headers=WRITE,
    )  # fmt: skip
    assert problem_paths(response) == ["name"]


def test_config_owned_entries_cannot_be_redefined_or_deleted(
    client: FlaskClient, api_app: Flask
) -> None:
    add_config_entry(api_app, "from-file")
    for response in (
        client.put("/api/v1/schedules/from-file", json={"task": HEARTBEAT, "every": "1m"},
                   headers=WRITE),
        client.patch("/api/v1/schedules/from-file", json={"every": "1m"}, headers=WRITE),
        client.delete("/api/v1/schedules/from-file", headers=WRITE),
    ):  # fmt: skip
        assert response.status_code == 409
        assert response.mimetype == PROBLEM
        assert "settings.toml" in response.get_json()["detail"]
    body = client.get("/api/v1/schedules/from-file", headers=READ).get_json()
    assert body["cron"] == "0 8 * * *"
    assert body["status"]["source"] == "config"


def test_patch_merges_and_null_resets(client: FlaskClient) -> None:
    create(client, "ping", description="old", jitter="5s")
    response = client.patch(
        "/api/v1/schedules/ping",
        json={"cron": "0 * * * *", "description": "new", "jitter": None},
        headers=WRITE,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["cron"] == "0 * * * *"
    assert "every" not in body
    assert body["description"] == "new"
    assert body["jitter"] == "0s"


def test_patch_errors(client: FlaskClient) -> None:
    assert client.patch("/api/v1/schedules/nope", json={}, headers=WRITE).status_code == 404
    create(client, "ping")
    response = client.patch("/api/v1/schedules/ping", json={"every": "0s"}, headers=WRITE)
    assert problem_paths(response) == ["every"]
    response = client.patch("/api/v1/schedules/ping", json={"bogus": 1}, headers=WRITE)
    assert problem_paths(response) == ["bogus"]
    assert client.get("/api/v1/schedules/ping", headers=READ).get_json()["every"] == "30s"


def test_delete(client: FlaskClient) -> None:
    create(client, "ping")
    response = client.delete("/api/v1/schedules/ping", headers=WRITE)
    assert response.status_code == 204
    assert response.data == b""
    assert client.get("/api/v1/schedules/ping", headers=READ).status_code == 404
    assert client.delete("/api/v1/schedules/ping", headers=WRITE).status_code == 404


def test_pause_and_resume_any_owner(client: FlaskClient, api_app: Flask) -> None:
    add_config_entry(api_app, "from-file")
    paused = client.post("/api/v1/schedules/from-file/pause", headers=WRITE)
    assert paused.status_code == 200
    assert paused.get_json()["status"]["paused"] is True
    assert paused.get_json()["status"]["active"] is False
    store = services(api_app).store
    store.set_next_run("from-file", datetime.now(UTC) - timedelta(days=2))
    resumed = client.post("/api/v1/schedules/from-file/resume", headers=WRITE)
    assert resumed.status_code == 200
    status = resumed.get_json()["status"]
    assert status["paused"] is False
    assert datetime.fromisoformat(status["next_run_at"]) > datetime.now(UTC)
    assert client.post("/api/v1/schedules/nope/pause", headers=WRITE).status_code == 404
    assert client.post("/api/v1/schedules/nope/resume", headers=WRITE).status_code == 404


def test_an_entry_far_behind_its_next_run_is_late(client: FlaskClient, api_app: Flask) -> None:
    create(client, "ping")
    services(api_app).store.set_next_run("ping", datetime.now(UTC) - timedelta(minutes=10))
    status = client.get("/api/v1/schedules/ping", headers=READ).get_json()["status"]
    assert status["late"] is True


def test_next_previews_fire_times_in_utc_and_the_entry_zone(client: FlaskClient) -> None:
    create(client, "daily", every=None, cron="30 2 * * *", timezone="Europe/Berlin")
    response = client.get(
        "/api/v1/schedules/daily/next?count=3&after=2026-03-28T12:00:00Z", headers=READ
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["timezone"] == "Europe/Berlin"
    # 02:30 does not exist on 2026-03-29 (spring forward): it fires at 03:00 CEST instead.
    assert body["fire_times"] == [
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:30:00Z",
        "2026-03-31T00:30:00Z",
    ]
    assert body["fire_times_local"][0] == "2026-03-29T03:00:00+02:00"
    offset = client.get(
        "/api/v1/schedules/daily/next?count=1&after=2026-03-28T13:00:00%2B01:00", headers=READ
    )
    assert offset.get_json()["fire_times"] == ["2026-03-29T01:00:00Z"]


def test_next_errors(client: FlaskClient) -> None:
    create(client, "ping")
    assert client.get("/api/v1/schedules/nope/next", headers=READ).status_code == 404
    bad = client.get("/api/v1/schedules/ping/next?after=yesterday", headers=READ)
    assert problem_paths(bad) == ["after"]
    naive = client.get("/api/v1/schedules/ping/next?after=2026-01-01T00:00:00", headers=READ)
    assert problem_paths(naive) == ["after"]
    assert problem_paths(client.get("/api/v1/schedules/ping/next?count=0", headers=READ)) == [
        "count"
    ]


def test_runs_of_an_entry(client: FlaskClient) -> None:
    create(client, "ping")
    response = client.get("/api/v1/schedules/ping/runs", headers=READ)
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "next": None}
    assert client.get("/api/v1/schedules/nope/runs", headers=READ).status_code == 404


def test_solar_entries_are_created_previewed_and_switched_back(client: FlaskClient) -> None:
    body = create(
        client,
        "lights-on",
        every=None,
        solar="sunset",
        latitude=51.5074,
        longitude=-0.1278,
        timezone="Europe/London",
    )
    assert body["solar"] == "sunset"
    assert body["status"]["schedule"] == "at sunset at 51.51°N 0.1278°W"
    preview = client.get(
        "/api/v1/schedules/lights-on/next?count=2&after=2026-06-21T00:00:00Z", headers=READ
    ).get_json()
    # London's midsummer sunset is 21:21 BST; the tables and the timetable agree to a minute.
    first = datetime.fromisoformat(preview["fire_times"][0])
    assert abs(first - datetime(2026, 6, 21, 20, 21, tzinfo=UTC)) < timedelta(minutes=2)
    assert preview["fire_times_local"][0].startswith("2026-06-21T21:2")

    switched = client.patch(
        "/api/v1/schedules/lights-on", json={"cron": "0 8 * * *"}, headers=WRITE
    )
    assert switched.status_code == 200, switched.get_json()
    assert {"solar", "latitude", "longitude"}.isdisjoint(switched.get_json())


def test_solar_without_a_place_is_a_422(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/schedules",
        json={"name": "dusk", "task": HEARTBEAT, "solar": "dusk_civil", "latitude": 10},
        headers=WRITE,
    )
    assert response.status_code == 422
    assert "solar needs latitude and longitude" in response.get_data(as_text=True)
    assert client.get("/api/v1/schedules/dusk", headers=READ).status_code == 404


def test_cron_dialect_last_friday_previews(client: FlaskClient) -> None:
    create(client, "payday", every=None, cron="0 18 * * fri#L", timezone="UTC")
    preview = client.get(
        "/api/v1/schedules/payday/next?count=2&after=2026-01-01T00:00:00Z", headers=READ
    ).get_json()
    assert preview["fire_times"] == ["2026-01-30T18:00:00Z", "2026-02-27T18:00:00Z"]
