"""Bearer tokens: no token, a read token and a write token against every read and write route."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from project.app import create_app
from tests.support.api import (
    HEARTBEAT,
    READ,
    READ_SECRET,
    WRITE,
    WRITE_SECRET,
    make_settings,
    services,
)

pytestmark = pytest.mark.integration

READ_ROUTES = [
    ("GET", "/api/v1/schedules"),
    ("GET", "/api/v1/schedules/ping"),
    ("GET", "/api/v1/schedules/ping/next"),
    ("GET", "/api/v1/schedules/ping/runs"),
    ("GET", "/api/v1/runs/some-task-id"),
    ("GET", "/api/v1/queues"),
    ("GET", "/api/v1/beat"),
]
PUBLIC_ROUTES = ["/api/v1/openapi.json", "/api/v1/docs"]
"""They describe the API and reveal nothing (no entry, run or queue)."""
WRITE_ROUTES = [
    ("POST", "/api/v1/schedules"),
    ("PUT", "/api/v1/schedules/ping"),
    ("PATCH", "/api/v1/schedules/ping"),
    ("POST", "/api/v1/schedules/ping/pause"),
    ("POST", "/api/v1/schedules/ping/resume"),
    ("POST", "/api/v1/schedules/ping/run"),
    ("DELETE", "/api/v1/schedules/ping"),
]
BODIES = {
    ("POST", "/api/v1/schedules"): {"name": "pong", "task": HEARTBEAT, "every": "1m"},
    ("PUT", "/api/v1/schedules/ping"): {"task": HEARTBEAT, "every": "2m"},
    ("PATCH", "/api/v1/schedules/ping"): {"description": "patched"},
}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """Who may do what does not depend on the database: SQLite only."""
    return f"sqlite:///{tmp_path / 'periodic.db'}"


@pytest.fixture
def seeded(client: FlaskClient) -> FlaskClient:
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    return client


def call(client: FlaskClient, method: str, path: str, headers: dict[str, str]) -> int:
    response = client.open(path, method=method, json=BODIES.get((method, path)), headers=headers)
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
    return response.status_code


@pytest.mark.parametrize(("method", "path"), READ_ROUTES + WRITE_ROUTES)
def test_no_token_is_401_with_a_challenge(seeded: FlaskClient, method: str, path: str) -> None:
    response = seeded.open(path, method=method, json=BODIES.get((method, path)))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PUBLIC_ROUTES)
def test_the_api_description_needs_no_token(seeded: FlaskClient, path: str) -> None:
    assert seeded.get(path).status_code == 200


@pytest.mark.parametrize(("method", "path"), READ_ROUTES)
@pytest.mark.parametrize("headers", [READ, WRITE], ids=["read-token", "write-token"])
def test_any_token_reads(
    seeded: FlaskClient, method: str, path: str, headers: dict[str, str]
) -> None:
    assert call(seeded, method, path, headers) in {200, 404}


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES)
def test_a_read_token_cannot_write(seeded: FlaskClient, method: str, path: str) -> None:
    assert call(seeded, method, path, READ) == 403
    assert seeded.get("/api/v1/schedules/ping", headers=READ).get_json()["every"] == "1h"


@pytest.mark.parametrize(("method", "path"), WRITE_ROUTES)
def test_a_write_token_writes(seeded: FlaskClient, method: str, path: str) -> None:
    assert call(seeded, method, path, WRITE) in {200, 201, 202, 204}


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {WRITE_SECRET}",
        "Bearer",
        "Bearer not-a-token-at-all-xxxxxxxx",
        f"Bearer {WRITE_SECRET}x",
        f"Bearer {WRITE_SECRET[:-1]}",
        WRITE_SECRET,
    ],
)
def test_malformed_or_unknown_tokens_are_401(seeded: FlaskClient, header: str) -> None:
    response = seeded.get("/api/v1/schedules", headers={"Authorization": header})
    assert response.status_code == 401


def test_without_configured_tokens_nothing_is_allowed(store_url: str, broker_url: str) -> None:
    settings = make_settings(
        store_url, broker_url, api={"tokens": []}, app={"environment": "production",
                                                       "database_url": store_url},
    )  # fmt: skip
    app = create_app(settings)
    try:
        response = app.test_client().get("/api/v1/schedules", headers=READ)
        assert response.status_code == 401
    finally:
        services(app).close()


def test_health_and_metrics_need_no_token(api_app: Flask) -> None:
    client = api_app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_secrets_and_arguments_stay_out_of_logs_and_errors(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_argument = "hunter2-do-not-print"
    body = {"name": "leaky", "task": HEARTBEAT, "every": "1m", "kwargs": {"pw": secret_argument}}
    response = client.post("/api/v1/schedules", json=body, headers=WRITE)
    assert response.status_code == 422
    client.get("/api/v1/schedules", headers={"Authorization": f"Bearer {READ_SECRET}0"})
    text = response.get_data(as_text=True) + caplog.text
    assert secret_argument not in text
    assert READ_SECRET not in caplog.text
    assert WRITE_SECRET not in caplog.text
