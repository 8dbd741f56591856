"""Bounds at the door: every out-of-range input is a 413/422 naming the field, nothing is stored,
and reads of what is stored never answer 5xx (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from scheduling.store.schema import entries
from tests.support.api import HEARTBEAT, READ, WRITE, services

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def refused(response: Any, status: int = 422) -> list[str]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return [error["path"] for error in response.get_json().get("errors", [])]


def nothing_stored(client: FlaskClient) -> None:
    listed = client.get("/api/v1/schedules", headers=READ)
    assert listed.status_code == 200
    assert listed.get_json()["items"] == []


BAD_DEFINITIONS = [
    pytest.param({"cron": "* * * * *", "jitter": "100000000d"}, "jitter", id="huge-jitter"),
    pytest.param({"cron": "* * * * *", "jitter": "2d"}, "jitter", id="jitter-over-cap"),
    pytest.param({"every": "5s", "misfire_grace": "1000000d"}, "misfire_grace", id="grace"),
    pytest.param({"every": "5s", "expires": "3000000d"}, "expires", id="expires"),
    pytest.param({"every": "100000d"}, "every", id="every"),
    pytest.param({"every": "1s", "start": "9999-12-31T23:59:58Z"}, "start", id="start-9999"),
    pytest.param({"every": "1s", "start": "0001-01-01T00:00:00-05:00"}, "start", id="start-1"),
    pytest.param({"every": "1s", "end": "9999-01-01T00:00:00+14:00"}, "end", id="end-9999"),
    pytest.param({"at": "9999-12-31T23:59:59-12:00"}, "at", id="at-9999"),
    pytest.param({"at": 0}, "at", id="at-number"),
    pytest.param({"at": "1700000000"}, "at", id="at-numeric-text"),
    pytest.param({"every": "5s", "max_runs": 2**40}, "max_runs", id="max-runs"),
    pytest.param(
        {"every": "5s", "kwargs": {"deep": json.loads("[" * 40 + "]" * 40)}},
        "kwargs",
        id="kwargs-40-deep",
    ),
    pytest.param({"every": "5s", "kwargs": {"blob": "x" * 70_000}}, "kwargs", id="kwargs-70k"),
    pytest.param({"every": "5s", "description": "d" * 70_000}, "description", id="desc-70k"),
]


@pytest.mark.parametrize(("fields", "path"), BAD_DEFINITIONS)
def test_an_out_of_range_definition_is_refused_naming_the_field(
    client: FlaskClient, fields: dict[str, Any], path: str
) -> None:
    body = {"name": "bad", "task": HEARTBEAT, **fields}
    assert path in refused(client.post("/api/v1/schedules", json=body, headers=WRITE))
    assert path in refused(client.put("/api/v1/schedules/bad", json=body, headers=WRITE))
    nothing_stored(client)


@pytest.mark.parametrize(("fields", "path"), BAD_DEFINITIONS)
def test_a_patch_out_of_range_is_refused_and_changes_nothing(
    client: FlaskClient, fields: dict[str, Any], path: str
) -> None:
    created = client.post(
        "/api/v1/schedules", json={"name": "ok", "task": HEARTBEAT, "every": "30s"}, headers=WRITE
    )
    assert created.status_code == 201
    assert path in refused(client.patch("/api/v1/schedules/ok", json=fields, headers=WRITE))
    after = client.get("/api/v1/schedules/ok", headers=READ).get_json()
    assert after["every"] == "30s"
    assert after["status"]["version"] == created.get_json()["status"]["version"]


def test_a_patch_of_jitter_alone_applies(client: FlaskClient) -> None:
    body = {"name": "ok", "task": HEARTBEAT, "every": "30s"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    response = client.patch("/api/v1/schedules/ok", json={"jitter": "5s"}, headers=WRITE)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["jitter"] == "5s"


def test_a_body_over_the_size_limit_is_413_and_not_stored(client: FlaskClient) -> None:
    body = {"name": "big", "task": HEARTBEAT, "every": "5s", "kwargs": {"x": "y" * 2_000_000}}
    refused(client.post("/api/v1/schedules", json=body, headers=WRITE), 413)
    nothing_stored(client)


def test_a_body_nested_beyond_the_parser_is_422(client: FlaskClient) -> None:
    deep = '{"name": "deep", "task": "t", "every": "5s", "kwargs": {"a": ' + "[" * 100_000
    deep += "]" * 100_000 + "}}"
    response = client.post(
        "/api/v1/schedules", data=deep, content_type="application/json", headers=WRITE
    )
    assert refused(response) == [""]
    nothing_stored(client)


def test_kwargs_nested_250_deep_is_422_not_503(client: FlaskClient) -> None:
    kwargs = {"a": json.loads("[" * 250 + "]" * 250)}
    body = {"name": "deep", "task": HEARTBEAT, "every": "5s", "kwargs": kwargs}
    assert "kwargs" in refused(client.post("/api/v1/schedules", json=body, headers=WRITE))
    nothing_stored(client)


@pytest.mark.parametrize(
    "name", ["trailing\n", "x" * 200 + "\n", "x" * 201, "-dash", "sp ace"], ids=repr
)
def test_entry_names_are_matched_whole(client: FlaskClient, name: str) -> None:
    body = {"name": name, "task": HEARTBEAT, "every": "5s"}
    assert "name" in refused(client.post("/api/v1/schedules", json=body, headers=WRITE))
    nothing_stored(client)


@pytest.mark.parametrize(
    "after",
    ["0", "0.5", "1700000000", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-12:00"],
)
def test_next_refuses_numbers_and_instants_out_of_range(client: FlaskClient, after: str) -> None:
    body = {"name": "ok", "task": HEARTBEAT, "every": "30s"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    response = client.get("/api/v1/schedules/ok/next", query_string={"after": after}, headers=READ)
    assert refused(response) == ["after"]


def test_a_costly_preview_answers_422_fast(client: FlaskClient) -> None:
    body = {"name": "rare", "task": HEARTBEAT, "cron": "0 0 */31 2 1", "timezone": "UTC"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    started = time.monotonic()
    response = client.get("/api/v1/schedules/rare/next?count=1000", headers=READ)
    assert time.monotonic() - started < 1.5
    assert refused(response) == ["count"]
    assert "ask for fewer" in response.get_json()["detail"]
    few = client.get("/api/v1/schedules/rare/next?count=3", headers=READ)
    assert few.status_code == 200
    assert len(few.get_json()["fire_times"]) == 3


def test_a_preview_stops_at_the_end_of_the_supported_range(client: FlaskClient) -> None:
    body = {"name": "late", "task": HEARTBEAT, "every": "3650d"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    response = client.get(
        "/api/v1/schedules/late/next?count=10&after=8980-01-01T00:00:00Z", headers=READ
    )
    assert response.status_code == 200, response.get_json()
    times = response.get_json()["fire_times"]
    assert 1 <= len(times) < 10
    assert all(t < "9000" for t in times)


def poison(app: Flask, name: str, definition: str, **columns: Any) -> None:
    """Write a row the API would refuse, as a store written before the bounds could hold it."""
    store = services(app).store
    with store._db.write() as conn:
        conn.execute(
            update(entries).where(entries.c.name == name).values(definition=definition, **columns)
        )


def test_reads_never_fail_on_out_of_range_data_already_stored(
    api_app: Flask, client: FlaskClient
) -> None:
    for name in ("far", "near"):
        body = {"name": name, "task": HEARTBEAT, "every": "1s"}
        assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    stored = json.dumps(
        {
            "task": HEARTBEAT,
            "every": "1s",
            "start": "9999-12-31T23:59:58Z",
            "timezone": "Pacific/Kiritimati",
            "misfire_grace": "1000000d",
            "expires": "3000000d",
        }
    )
    poison(api_app, "far", stored, next_run_at=datetime(9999, 12, 31, 23, 59, 58, tzinfo=UTC))
    listed = client.get("/api/v1/schedules", headers=READ)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    assert [item["name"] for item in listed.get_json()["items"]] == ["far", "near"]
    one = client.get("/api/v1/schedules/far", headers=READ)
    assert one.status_code == 200, one.get_data(as_text=True)
    preview = client.get("/api/v1/schedules/far/next", headers=READ)
    assert preview.status_code < 500, preview.get_data(as_text=True)
    assert client.delete("/api/v1/schedules/far", headers=WRITE).status_code == 204


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"headers": {"Authorization": {"$secret": "lower case"}}}, "kwargs.headers.Authorization"),
        ({"headers": {"$secret": "TOKEN", "extra": 1}}, "kwargs.headers"),
    ],
)
def test_a_malformed_secret_reference_is_refused(
    client: FlaskClient, kwargs: dict[str, Any], path: str
) -> None:
    body = {"name": "hook", "task": HEARTBEAT, "every": "5s", "kwargs": kwargs}
    assert path in refused(client.post("/api/v1/schedules", json=body, headers=WRITE))
    nothing_stored(client)


def test_a_definition_that_does_not_parse_is_409_and_can_be_deleted(
    api_app: Flask, client: FlaskClient
) -> None:
    for name in ("broken", "fine"):
        body = {"name": name, "task": HEARTBEAT, "every": "1s"}
        assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    poison(api_app, "broken", "{not json")
    one = client.get("/api/v1/schedules/broken", headers=READ)
    assert one.status_code == 409, one.get_data(as_text=True)
    assert "delete it" in one.get_json()["detail"]
    listed = client.get("/api/v1/schedules", headers=READ)
    assert listed.status_code == 200
    assert [item["name"] for item in listed.get_json()["items"]] == ["fine"]
    assert client.delete("/api/v1/schedules/broken", headers=WRITE).status_code == 204
