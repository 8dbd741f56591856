"""The dashboard's entry editor and timelines through Flask's test client (real store and broker).

The form must accept and refuse exactly what the API does, show problems beside their fields,
store nothing on error, and keep settings.toml entries read-only; the timelines must draw one
cell per run coloured by its outcome. The browser test
(tests/e2e/test_editor_and_timelines_in_chromium.py) covers the same path in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from project.app import create_app
from scheduling.config.settings import ScheduleEntry
from scheduling.flask import Periodic
from scheduling.store import RunState, SlotClaim, Store
from tests.support.api import (
    HEARTBEAT,
    READ_SECRET,
    WRITE_SECRET,
    make_settings,
    services,
    temporary_queues,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def app(store_url: str, broker_url: str) -> Iterator[Flask]:
    app_section = {"timezone": "Europe/Berlin", "database_url": store_url, "secret_key": "k" * 40}
    settings = make_settings(store_url, broker_url, app=app_section)
    with temporary_queues(settings):
        built = create_app(settings)
        built.config["TESTING"] = True
        try:
            yield built
        finally:
            services(built).close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def sign_in(app: Flask, secret: str = WRITE_SECRET) -> FlaskClient:
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token, "token": secret})
    assert response.status_code in {302, 303}
    return client


def submit(client: FlaskClient, path: str, **fields: Any) -> Any:
    token = csrf_of(client.get("/new").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **fields})


def store_of(app: Flask) -> Store:
    return services(app).store


def test_invalid_fields_are_shown_beside_them_and_nothing_is_stored(app: Flask) -> None:
    client = sign_in(app)
    response = submit(
        client, "/new", action="save", name="nightly", task=HEARTBEAT, cron="0 25 * * *",
        kwargs="{oops", enabled="on",
    )  # fmt: skip

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="e-cron"' in html
    assert "hour 25 is out of range 0-23" in html
    assert 'id="e-kwargs"' in html
    assert store_of(app).get_entry("nightly") is None


def test_task_and_queue_are_checked_like_the_api(app: Flask) -> None:
    client = sign_in(app)
    response = submit(
        client, "/new", action="save", name="nightly", task="no.such.task", cron="0 2 * * *",
    )  # fmt: skip

    assert response.status_code == 422
    assert 'id="e-task"' in response.get_data(as_text=True)
    assert store_of(app).get_entry("nightly") is None


def test_preview_shows_words_and_five_fire_times_in_both_zones(app: Flask) -> None:
    client = sign_in(app)
    response = submit(
        client, "/new", action="preview", name="payday", task=HEARTBEAT, cron="0 18 * * fri#L",
        timezone="Europe/Berlin",
    )  # fmt: skip

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "at 18:00 on the last Friday" in html
    assert html.count("CET") + html.count("CEST") >= 5
    assert html.count(" UTC</span>") == 5
    assert store_of(app).get_entry("payday") is None


def test_create_edit_clone_delete(app: Flask) -> None:
    client = sign_in(app)
    created = submit(
        client, "/new", action="save", name="nightly", task=HEARTBEAT, cron="30 2 * * *",
        enabled="on", description="backup",
    )  # fmt: skip
    assert created.status_code in {302, 303}
    assert created.headers["Location"].endswith("/entries/nightly")
    record = store_of(app).get_entry("nightly")
    assert record is not None
    assert (record.owner, record.definition.cron) == ("api", "30 2 * * *")

    form = client.get("/entries/nightly/edit").get_data(as_text=True)
    assert 'value="30 2 * * *"' in form
    edited = submit(
        client, "/entries/nightly/edit", action="save", task=HEARTBEAT, cron="45 3 * * *",
        enabled="on", description="backup",
    )  # fmt: skip
    assert edited.status_code in {302, 303}
    history = store_of(app).entry_history("nightly")
    assert [(item.action, item.actor) for item in history] == [
        ("update", "dashboard:writer"),
        ("create", "dashboard:writer"),
    ]
    assert history[0].details == {"changes": {"cron": {"from": "30 2 * * *", "to": "45 3 * * *"}}}

    clone = client.get("/new?clone=nightly").get_data(as_text=True)
    assert 'value="nightly-copy"' in clone
    assert 'value="45 3 * * *"' in clone

    deleted = submit(client, "/entries/nightly/delete")
    assert deleted.status_code in {302, 303}
    assert store_of(app).get_entry("nightly") is None


def test_settings_entries_are_read_only(app: Flask) -> None:
    store_of(app).sync_config({"from-file": ScheduleEntry(task=HEARTBEAT, every="1h")}, {})
    client = sign_in(app)

    page = client.get("/entries/from-file").get_data(as_text=True)
    edit = client.get("/entries/from-file/edit")
    delete = submit(client, "/entries/from-file/delete")

    assert "read-only: from" in page
    assert 'every = "1h"' in page
    assert "/entries/from-file/edit" not in page
    assert edit.status_code in {302, 303}
    assert delete.status_code in {302, 303}
    assert store_of(app).get_entry("from-file") is not None


def test_read_tokens_and_missing_csrf_change_nothing(app: Flask) -> None:
    reader = sign_in(app, READ_SECRET)
    assert reader.get("/new").status_code == 403
    writer = sign_in(app)
    forged = writer.post(
        "/new", data={"action": "save", "name": "x", "task": HEARTBEAT, "every": "1h"}
    )
    assert forged.status_code == 400
    assert store_of(app).get_entry("x") is None


def test_live_preview_json(app: Flask) -> None:
    client = sign_in(app)
    good = client.get(f"/preview.json?task={HEARTBEAT}&every=15m&timezone=UTC").get_json()
    bad = client.get(f"/preview.json?task={HEARTBEAT}&cron=nope").get_json()

    assert good["words"] == "every 15 minutes"
    assert len(good["times"]) == 5
    assert good["times"][0]["utc"].endswith(" UTC")
    assert "cron" in bad["problems"]


def test_timelines_draw_one_cell_per_run_coloured_by_outcome(app: Flask) -> None:
    store = store_of(app)
    store.create_entry("tick", ScheduleEntry(task=HEARTBEAT, every="1m"), next_run_at=None)
    lease = store.acquire_lease("beat-t", timedelta(minutes=5), datetime.now(UTC))
    assert lease is not None
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    recorded = [RunState.PENDING, RunState.PENDING, RunState.MISSED, RunState.PENDING]
    claims = [
        SlotClaim("tick", base + timedelta(minutes=index), f"t{index}", state)
        for index, state in enumerate(recorded)
    ]
    store.claim_slots(claims, holder=lease.holder, token=lease.token, next_runs={})
    store.mark_dispatched(["t0", "t1"], base + timedelta(seconds=1))
    store.mark_dispatched(["t3"], base + timedelta(minutes=3, seconds=90))  # 90 s late
    store.record_run_finished("t0", RunState.SUCCEEDED, base + timedelta(seconds=3), runtime=2.0)
    store.record_run_finished("t1", RunState.FAILED, base + timedelta(minutes=1), runtime=0.5)
    store.record_run_finished("t3", RunState.SUCCEEDED, base + timedelta(minutes=4), runtime=1.0)
    client = sign_in(app)

    page = client.get("/entries/tick").get_data(as_text=True)
    overview = client.get("/").get_data(as_text=True)

    strip = page.split('class="timeline timeline-strip"', 1)[1].split("</svg>", 1)[0]
    assert re.findall(r'<rect class="tl-(\w+)', strip) == ["succeeded", "failed", "missed", "late"]
    runtime = page.split('class="timeline timeline-runtime"', 1)[1].split("</svg>", 1)[0]
    assert runtime.count("<rect") == 3
    day = overview.split('aria-label="Runs of tick per hour', 1)[1].split("</svg>", 1)[0]
    hours = re.findall(r'<rect class="tl-(\w+)', day)  # one cell, or two across an hour's end
    assert "failed" in hours
    assert len(hours) in {1, 2}
    assert "style=" not in strip + runtime + day


def test_the_dashboard_serves_its_stylesheet_and_script(app: Flask) -> None:
    """Even before sign-in (the sign-in page uses them), and not shadowed by the app's /static."""
    client = app.test_client()
    for asset in ("dashboard.css", "dashboard.js"):
        response = client.get(f"/static/{asset}")
        try:
            assert response.status_code == 200
        finally:
            response.close()


def test_the_editor_works_under_a_team_apps_prefix(store_url: str, broker_url: str) -> None:
    """Through the extension (`Periodic(app)` mounts under /periodic): form, save, assets."""
    app_section = {"timezone": "UTC", "database_url": store_url, "secret_key": "k" * 40}
    settings = make_settings(store_url, broker_url, app=app_section)
    team_app = Flask("team")
    team_app.config["TESTING"] = True
    with temporary_queues(settings):
        Periodic(team_app, settings=settings)
        try:
            client = team_app.test_client()
            token = csrf_of(client.get("/periodic/login").get_data(as_text=True))
            client.post("/periodic/login", data={"csrf_token": token, "token": WRITE_SECRET})
            form = client.get("/periodic/new").get_data(as_text=True)
            assert 'action="/periodic/new"' in form
            assert 'data-preview-url="/periodic/preview.json"' in form
            saved = client.post(
                "/periodic/new",
                data={"csrf_token": csrf_of(form), "action": "save", "name": "team-tick",
                      "task": HEARTBEAT, "every": "1h", "enabled": "on"},
            )  # fmt: skip
            assert saved.headers["Location"].endswith("/periodic/entries/team-tick")
            assert services(team_app).store.get_entry("team-tick") is not None
        finally:
            services(team_app).close()
