"""`/healthz`, `/readyz` (store, broker, beat lag, unattended queues) and `/metrics`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kombu import Connection
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from project.app import create_app
from scheduling.config.settings import Settings
from scheduling.flask import metrics
from scheduling.flask.metrics import counting_epoch
from scheduling.store import BeatStatus, RunState
from tests.support.api import (
    HEARTBEAT,
    WRITE,
    make_settings,
    queue_names,
    services,
    temporary_queues,
)

pytestmark = pytest.mark.integration

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
CLOSED_PORT_BROKER = "amqp://guest:guest@127.0.0.1:9//"
CLOSED_PORT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=1"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'periodic.db'}"


def lead(app: Flask, lag: float | None = 0.1) -> None:
    store = services(app).store
    now = datetime.now(UTC)
    assert store.acquire_lease("beat-a", timedelta(seconds=30), now) is not None
    store.record_beat(BeatStatus("beat-a", "host-a", 1, "leader", now, lag))


def ready(client: FlaskClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_ready_when_store_broker_and_leader_are_fine(client: FlaskClient, api_app: Flask) -> None:
    lead(api_app)
    status, body = ready(client)
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["failed"] == []
    assert body["checks"]["beat"]["leader"] == "beat-a"


def test_not_ready_without_a_leading_beat(client: FlaskClient) -> None:
    status, body = ready(client)
    assert status == 503
    assert body["failed"] == ["beat"]
    assert "lease" in body["checks"]["beat"]["detail"]


def test_not_ready_when_the_leader_lags(client: FlaskClient, api_app: Flask) -> None:
    lead(api_app, lag=120.0)
    status, body = ready(client)
    assert status == 503
    assert body["failed"] == ["beat"]
    assert "lag_alert" in body["checks"]["beat"]["detail"]


def test_not_ready_when_entries_wait_on_a_queue_without_consumers(
    client: FlaskClient, api_app: Flask, api_settings: Settings
) -> None:
    lead(api_app)
    high = queue_names(api_settings)["high"]
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": high}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    status, report = ready(client)
    assert status == 503
    assert report["failed"] == ["queues"]
    assert report["checks"]["queues"]["unattended"] == [high]

    with Connection(api_settings.broker.url.get_secret_value()) as connection:
        channel = connection.channel()
        channel.basic_consume(queue=high, callback=lambda message: None)
        deadline = time.monotonic() + 10
        while ready(client)[0] != 200:
            assert time.monotonic() < deadline, ready(client)[1]
            time.sleep(0.05)
        channel.close()


def test_not_ready_when_the_broker_is_down_answers_within_the_check_timeout(
    store_url: str,
) -> None:
    settings = make_settings(store_url, CLOSED_PORT_BROKER, beat={"scheduler": "static"})
    app = create_app(settings)
    try:
        started = time.monotonic()
        status, body = ready(app.test_client())
        assert time.monotonic() - started < 3
        assert status == 503
        assert body["failed"] == ["broker", "queues"]
        assert body["checks"]["store"]["ok"] is True
    finally:
        services(app).close()


def test_not_ready_when_the_store_is_down(broker_url: str) -> None:
    settings = make_settings(CLOSED_PORT_DATABASE, broker_url, beat={"scheduler": "static"})
    app = create_app(settings)
    try:
        status, body = ready(app.test_client())
        assert status == 503
        assert "store" in body["failed"]
        assert body["checks"]["broker"]["ok"] is True
        assert client_metrics_up(app) == {"store": 0.0, "broker": 1.0}
    finally:
        services(app).close()


def client_metrics_up(app: Flask) -> dict[str, float]:
    found = samples(app.test_client())
    return {
        dict(labels)["component"]: value
        for (name, labels), value in found.items()
        if name == "periodic_up"
    }


def family_types(client: FlaskClient, accept: str = "") -> dict[str, str]:
    response = client.get("/metrics", headers={"Accept": accept} if accept else {})
    parse = text_string_to_metric_families
    if "openmetrics" in response.content_type:
        parse = openmetrics_families
    return {family.name: family.type for family in parse(response.get_data(as_text=True))}


def test_metrics_from_the_ledger_store_and_broker(
    client: FlaskClient, api_app: Flask, api_settings: Settings
) -> None:
    lead(api_app, lag=0.5)
    high = queue_names(api_settings)["high"]
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": high}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    task_id = client.post("/api/v1/schedules/ping/run", headers=WRITE).get_json()["task_id"]
    store = services(api_app).store
    now = datetime.now(UTC)
    store.record_run_started(task_id, "worker-1", now)
    store.record_run_finished(task_id, RunState.SUCCEEDED, now + timedelta(seconds=3))
    store.set_next_run("ping", now - timedelta(hours=1))

    found = samples(client)
    assert found[("periodic_up", (("component", "store"),))] == 1
    assert found[("periodic_up", (("component", "broker"),))] == 1
    entry = (("entry", "ping"), ("queue", high))
    assert found[("periodic_dispatches_total", entry)] == 1
    succeeded = (("entry", "ping"), ("outcome", "succeeded"), ("queue", high))
    assert found[("periodic_runs_total", succeeded)] == 1
    assert found[("periodic_run_duration_seconds_count", entry)] == 1
    assert found[("periodic_run_duration_seconds_sum", entry)] == pytest.approx(3.0)
    bucket = "periodic_run_duration_seconds_bucket"
    assert found[(bucket, (("entry", "ping"), ("le", "5.0"), ("queue", high)))] == 1
    assert found[(bucket, (("entry", "ping"), ("le", "1.0"), ("queue", high)))] == 0
    assert found[("periodic_late_entries", ())] == 1
    assert found[("periodic_entry_overdue_seconds", (("entry", "ping"),))] >= 3600
    assert found[("periodic_entries", (("state", "active"),))] == 1
    assert found[("periodic_queue_messages", (("queue", high),))] == 1
    assert found[("periodic_queue_unattended", (("queue", high),))] == 1
    assert found[("periodic_beat_leader", (("hostname", "host-a"),))] == 1
    assert found[("periodic_beat_lag_seconds", ())] == 0.5


def test_metrics_follow_prometheus_conventions(client: FlaskClient, api_app: Flask) -> None:
    lead(api_app)
    client.get("/healthz")
    types = family_types(client)
    for counter in ("periodic_runs", "periodic_dispatches", "periodic_missed_slots"):
        assert types[counter] == "counter", counter
    for histogram in ("periodic_run_duration_seconds", "periodic_dispatch_lag_seconds"):
        assert types[histogram] == "histogram", histogram
    assert types["periodic_http_requests"] == "counter"
    assert types["periodic_http_request_duration_seconds"] == "histogram"
    assert types["process_cpu_seconds"] == "counter"
    assert not [name for name, kind in types.items() if kind == "gaugehistogram"]
    found = samples(client)
    healthz = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert found[("periodic_http_requests_total", healthz)] >= 1


def test_metrics_speak_openmetrics_when_asked(client: FlaskClient) -> None:
    response = client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")
    assert family_types(client, OPENMETRICS)["periodic_runs"] == "counter"


def test_counters_count_the_ledger_since_midnight_and_never_shrink_on_purge(
    client: FlaskClient, api_app: Flask, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "CACHE_SECONDS", 0.0)
    high = queue_names(api_settings)["high"]
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": high}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    task_id = client.post("/api/v1/schedules/ping/run", headers=WRITE).get_json()["task_id"]
    store = services(api_app).store
    store.record_run_finished(task_id, RunState.FAILED, datetime.now(UTC))
    key = ("periodic_runs_total", (("entry", "ping"), ("outcome", "failed"), ("queue", high)))
    assert samples(client)[key] == 1
    assert store.purge_runs(counting_epoch(datetime.now(UTC))) == 0
    assert samples(client)[key] == 1
    created = ("periodic_runs_created", key[1])
    assert samples(client)[created] == counting_epoch(datetime.now(UTC)).timestamp()


def test_entry_labels_can_be_dropped(broker_url: str, store_url: str) -> None:
    settings = make_settings(store_url, broker_url, metrics={"entry_labels": False})
    app = create_app(settings)
    try:
        client = app.test_client()
        high = queue_names(settings)["high"]
        with temporary_queues(settings):
            body = {"name": "ping", "task": HEARTBEAT, "every": "1h", "queue": high}
            assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
            assert client.post("/api/v1/schedules/ping/run", headers=WRITE).status_code == 202
            found = samples(client)
        assert found[("periodic_dispatches_total", (("queue", high),))] == 1
        assert not [labels for _, labels in found if "entry" in dict(labels)]
    finally:
        services(app).close()


def test_readyz_failure_is_a_problem_document(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 503
    assert body["title"] == "Not ready"
    assert body["failed"] == ["beat"]
    assert body["detail"].startswith("beat: ")


def test_each_app_has_its_own_metrics_registry(api_app: Flask, api_settings: Settings) -> None:
    other = create_app(api_settings)
    try:
        assert client_metrics_up(other) == client_metrics_up(api_app)
        assert other.extensions["periodic.metrics"] is not api_app.extensions["periodic.metrics"]
    finally:
        services(other).close()
