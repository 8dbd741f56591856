"""An entry beat holds in error is shown everywhere: API `status.error`, the dashboard, /metrics
and /readyz (degraded, 200, naming the entry); the others show no error. Deleting it clears it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from scheduling.flask.api.schemas import ScheduleOut
from scheduling.store import BeatStatus, EntryFault
from tests.support.api import HEARTBEAT, READ, WRITE, services

pytestmark = pytest.mark.integration


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'periodic.db'}"


def test_an_entry_in_error_is_visible_and_the_others_are_not(
    api_app: Flask, client: FlaskClient
) -> None:
    for name in ("bad", "good"):
        body = {"name": name, "task": HEARTBEAT, "every": "1h"}
        assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    store = services(api_app).store
    now = datetime.now(UTC)
    assert store.acquire_lease("beat-a", timedelta(seconds=30), now) is not None
    store.record_beat(BeatStatus("beat-a", "host-a", 1, "leader", now, 0.1))
    since, retry_at = now - timedelta(minutes=1), now + timedelta(seconds=40)
    store.record_entry_faults([EntryFault("bad", "OverflowError: boom", 3, since, retry_at)])

    bad = client.get("/api/v1/schedules/bad", headers=READ).get_json()
    ScheduleOut.model_validate(bad)
    assert bad["status"]["error"]["message"] == "OverflowError: boom"
    assert bad["status"]["error"]["failures"] == 3
    assert bad["status"]["error"]["retry_at"].endswith("Z")
    assert client.get("/api/v1/schedules/good", headers=READ).get_json()["status"]["error"] is None

    readiness = client.get("/readyz")
    report = readiness.get_json()
    assert report["checks"]["entries"]["entries"] == ["bad"]
    assert "bad (OverflowError: boom)" in report["checks"]["entries"]["detail"]
    assert report["degraded"] == ["entries"]
    assert "entries" not in report["failed"]

    text = client.get("/metrics").get_data(as_text=True)
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values[("periodic_entries_in_error", ())] == 1
    assert values[("periodic_entry_error", (("entry", "bad"),))] == 1

    assert client.delete("/api/v1/schedules/bad", headers=WRITE).status_code == 204
    assert store.entry_faults() == {}
    assert client.get("/readyz").get_json()["checks"]["entries"]["degraded"] is False
