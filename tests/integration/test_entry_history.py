"""The entries' audit trail: every change recorded with who and when, in the store and the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from project.app import create_app
from scheduling.config.settings import ScheduleEntry
from scheduling.errors import ConfigOwnedEntry
from scheduling.store import Store
from scheduling.tasks.maintenance import purge_finished_runs
from tests.support.api import (
    HEARTBEAT,
    READ,
    WRITE,
    WRITE_SECRET,
    make_settings,
    services,
    temporary_queues,
)

pytestmark = pytest.mark.integration

HOURLY = ScheduleEntry(task="t", every=timedelta(hours=1))


def actions(store: Store, name: str) -> list[tuple[str, str]]:
    return [(record.action, record.actor) for record in store.entry_history(name)]


def test_each_entry_write_leaves_one_record_newest_first(store: Store) -> None:
    store.create_entry("e", HOURLY, next_run_at=None, actor="token:ops")
    changed = ScheduleEntry(task="t", cron="0 8 * * *", description="morning")
    store.replace_entry("e", changed, next_run_at=None, actor="dashboard:ana")
    store.set_paused("e", True, actor="token:ops")
    store.set_paused("e", True, actor="token:ops")  # no change, no record
    store.set_paused("e", False, actor="cli:root")
    store.record_entry_action("e", "run_now", "token:ops", {"task_id": "abc"})
    store.delete_entry("e", actor="token:ops")

    assert actions(store, "e") == [
        ("delete", "token:ops"),
        ("run_now", "token:ops"),
        ("resume", "cli:root"),
        ("pause", "token:ops"),
        ("update", "dashboard:ana"),
        ("create", "token:ops"),
    ]
    delete, run_now, *_, update, create = store.entry_history("e")
    assert create.details == {"definition": {"task": "t", "every": "1h"}}
    assert update.details == {
        "changes": {
            "cron": {"from": None, "to": "0 8 * * *"},
            "description": {"from": None, "to": "morning"},
            "every": {"from": "1h", "to": None},
        }
    }
    assert run_now.details == {"task_id": "abc"}
    assert delete.details["definition"]["cron"] == "0 8 * * *"
    assert all(record.at.tzinfo is UTC for record in store.entry_history("e"))


def test_a_refused_write_records_nothing(store: Store) -> None:
    store.sync_config({"daily": HOURLY}, {"daily": None}, actor="settings:/srv/settings.toml")
    with pytest.raises(ConfigOwnedEntry):
        store.replace_entry("daily", HOURLY, next_run_at=None, actor="token:ops")
    with pytest.raises(ConfigOwnedEntry):
        store.delete_entry("daily", actor="token:ops")

    assert actions(store, "daily") == [("create", "settings:/srv/settings.toml")]


def test_sync_records_created_changed_and_pruned_entries(store: Store) -> None:
    source = "settings:/srv/settings.toml"
    store.sync_config({"a": HOURLY, "b": HOURLY}, {}, actor=source)
    store.sync_config(
        {"a": HOURLY, "b": ScheduleEntry(task="t", every=timedelta(hours=2))}, {}, actor=source
    )
    store.sync_config({"b": ScheduleEntry(task="t", every=timedelta(hours=2))}, {}, actor=source)

    assert actions(store, "a") == [("delete", source), ("create", source)]
    assert actions(store, "b") == [("update", source), ("create", source)]
    (update, _) = store.entry_history("b")
    assert update.details == {"changes": {"every": {"from": "1h", "to": "2h"}}}


def test_pages_go_back_by_id(store: Store) -> None:
    store.create_entry("e", HOURLY, next_run_at=None, actor="a")
    for index in range(5):
        store.set_paused("e", index % 2 == 0, actor=f"a{index}")

    first = store.entry_history("e", limit=4)
    rest = store.entry_history("e", before_id=first[-1].id, limit=4)

    assert [record.actor for record in first + rest] == ["a4", "a3", "a2", "a1", "a0", "a"]


def test_purge_runs_policy_purges_old_history_too(store: Store) -> None:
    store.create_entry("e", HOURLY, next_run_at=None, actor="a")
    now = datetime.now(UTC)

    assert purge_finished_runs(store, timedelta(days=30), now) == 0
    assert len(store.entry_history("e")) == 1
    purge_finished_runs(store, timedelta(days=30), now + timedelta(days=31))
    assert store.entry_history("e") == []


# --- through the API ------------------------------------------------------------------------


def history(client: FlaskClient, name: str, query: str = "") -> Any:
    return client.get(f"/api/v1/schedules/{name}/history{query}", headers=READ)


def test_api_writes_are_recorded_with_the_token_name(client: FlaskClient) -> None:
    body = {"name": "ping", "task": HEARTBEAT, "every": "30s"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    patched = client.patch("/api/v1/schedules/ping", json={"every": "1m"}, headers=WRITE)
    assert patched.status_code == 200
    assert client.post("/api/v1/schedules/ping/pause", headers=WRITE).status_code == 200
    assert client.post("/api/v1/schedules/ping/resume", headers=WRITE).status_code == 200
    ran = client.post("/api/v1/schedules/ping/run", headers=WRITE)
    assert ran.status_code == 202
    assert client.delete("/api/v1/schedules/ping", headers=WRITE).status_code == 204

    response = history(client, "ping")
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [(item["action"], item["actor"]) for item in items] == [
        ("delete", "token:writer"),
        ("run_now", "token:writer"),
        ("resume", "token:writer"),
        ("pause", "token:writer"),
        ("update", "token:writer"),
        ("create", "token:writer"),
    ]
    assert items[1]["details"] == {"task_id": ran.get_json()["task_id"]}
    assert items[4]["details"] == {"changes": {"every": {"from": "30s", "to": "1m"}}}
    assert items[0]["at"].endswith("Z")
    assert response.get_json()["next"] is None


def test_api_history_pages_and_answers_404_for_unknown_names(client: FlaskClient) -> None:
    body = {"name": "ping", "task": HEARTBEAT, "every": "30s"}
    client.post("/api/v1/schedules", json=body, headers=WRITE)
    client.post("/api/v1/schedules/ping/pause", headers=WRITE)

    first = history(client, "ping", "?limit=1").get_json()
    assert [item["action"] for item in first["items"]] == ["pause"]
    second = history(client, "ping", f"?limit=1&before={first['next']}").get_json()
    assert [item["action"] for item in second["items"]] == ["create"]
    assert second["next"] is None
    assert history(client, "nope").status_code == 404
    assert history(client, "ping", "?limit=0").status_code == 422


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


@pytest.fixture
def dashboard_client(store_url: str, broker_url: str) -> Iterator[FlaskClient]:
    """The API and a working dashboard (a session key) on one app."""
    app_section = {"timezone": "UTC", "database_url": store_url, "secret_key": "k" * 40}
    settings = make_settings(store_url, broker_url, app=app_section)
    with temporary_queues(settings):
        app = create_app(settings)
        app.config["TESTING"] = True
        try:
            yield app.test_client()
        finally:
            services(app).close()


def test_dashboard_actions_are_recorded_and_shown(dashboard_client: FlaskClient) -> None:
    client = dashboard_client
    body = {"name": "ping", "task": HEARTBEAT, "every": "30s"}
    client.post("/api/v1/schedules", json=body, headers=WRITE)
    client.patch("/api/v1/schedules/ping", json={"description": "hi"}, headers=WRITE)
    token = csrf_of(client.get("/login").get_data(as_text=True))
    signed_in = client.post("/login", data={"csrf_token": token, "token": WRITE_SECRET})
    assert signed_in.status_code in {302, 303}
    token = csrf_of(client.get("/entries/ping").get_data(as_text=True))
    paused = client.post("/entries/ping/pause", data={"csrf_token": token, "back": "/"})
    assert paused.status_code in {302, 303}

    html = client.get("/entries/ping").get_data(as_text=True)

    assert 'id="history-title"' in html
    assert "token:writer</strong> changed" in html
    assert "description: (default) → &#34;hi&#34;" in html
    assert "dashboard:writer</strong> paused" in html


def test_dashboard_explains_a_slot(dashboard_client: FlaskClient) -> None:
    client = dashboard_client
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    client.post("/api/v1/schedules", json=body, headers=WRITE)
    token = csrf_of(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf_token": token, "token": WRITE_SECRET})

    answered = client.get("/entries/ping?at=2020-01-01T00:30").get_data(as_text=True)
    garbled = client.get("/entries/ping?at=yesterday").get_data(as_text=True)

    assert 'data-reason="created_after"' in answered
    assert "2020-01-01 00:00:00 UTC" in answered  # the slot at or before 00:30 (entry in UTC)
    assert "&#39;yesterday&#39; is not a date and time" in garbled
