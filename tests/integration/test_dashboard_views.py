"""The dashboard through Flask's test client, on a real SQLite store (the broker deliberately down).

Sign-in, CSRF, scopes, the production key rule, and what the pages say about late entries, failed
runs and an unreachable broker. The browser test (tests/e2e/test_dashboard.py) covers the live path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from project.app import create_app
from scheduling.config.settings import ApiToken, AppSettings, ScheduleEntry, Settings
from scheduling.store import EntryFault, RunState, Store

pytestmark = pytest.mark.integration

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"
WRITE_SECRET = "w" * 32
READ_SECRET = "r" * 32
KEY = "k" * 40
DOWN_BROKER = "amqp://guest:guest@127.0.0.1:9//"


def make_settings(database: str, **app: Any) -> Settings:
    return Settings(
        app=AppSettings(database_url=database, **{"environment": "development", **app}),
        broker={"url": DOWN_BROKER, "connect_timeout": "1s"},
        api={
            "tokens": [
                ApiToken(name="ops", secret=WRITE_SECRET, scope="write"),
                ApiToken(name="viewer", secret=READ_SECRET, scope="read"),
            ]
        },
        schedule={
            "ping": ScheduleEntry(task=HEARTBEAT, every=timedelta(minutes=1), description="pong"),
            "nightly": ScheduleEntry(task=HEARTBEAT, cron="30 2 * * *", queue="low"),
        },
    )


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'periodic.db'}"


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    opened = Store.open(database)
    yield opened
    opened.close()


@pytest.fixture
def app(database: str, store: Store) -> Iterator[Flask]:
    settings = make_settings(database, secret_key=KEY)
    now = datetime.now(UTC)
    store.sync_config(
        settings.schedule, {"ping": now + timedelta(minutes=1), "nightly": now + timedelta(hours=5)}
    )
    built = create_app(settings)
    built.config["TESTING"] = True
    yield built
    built.extensions["periodic"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: FlaskClient, secret: str = WRITE_SECRET, next_path: str = "/") -> Any:
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "token": secret, "next": next_path})


def test_the_overview_needs_a_sign_in(client: FlaskClient) -> None:
    response = client.get("/entries/ping")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/entries/ping"


@pytest.mark.parametrize(
    ("asset", "mimetype"), [("dashboard.css", "text/css"), ("dashboard.js", "text/javascript")]
)
def test_the_pages_own_assets_load_before_and_after_sign_in(
    client: FlaskClient, asset: str, mimetype: str
) -> None:
    """The reference app mounts the dashboard at the root: its /static must not be shadowed by
    a static route of the app (the page would never refresh itself), nor hidden behind sign-in
    (the login page would be unstyled)."""
    with client.get(f"/static/{asset}") as response:
        assert response.status_code == 200
        assert response.mimetype == mimetype


def test_a_wrong_token_is_refused_with_what_to_use(client: FlaskClient) -> None:
    response = sign_in(client, secret="x" * 32)
    assert response.status_code == 401
    text = response.get_data(as_text=True)
    assert "That token is not valid" in text
    assert "var/dev-token" in text
    assert client.get("/").status_code == 302


def test_signing_in_sets_a_strict_httponly_cookie_without_the_secret(
    client: FlaskClient,
) -> None:
    response = sign_in(client, next_path="/entries/ping")
    assert response.status_code == 302
    assert response.headers["Location"] == "/entries/ping"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert WRITE_SECRET not in cookie
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil",
        "/\t/evil.example",
        "/\n/evil.example",
        "/x\r\nSet-Cookie: a=b",
        "/%09/evil.example".replace("%09", "\t"),
        "javascript:alert(1)",
        "/\\/evil.example",
    ],
)
def test_sign_in_never_redirects_off_site(client: FlaskClient, target: str) -> None:
    assert sign_in(client, next_path=target).headers["Location"] == "/"


@pytest.mark.parametrize("query", ["next=/%09/evil.example", "next=/%0d%0aSet-Cookie:%20a=b"])
def test_login_links_with_control_characters_go_home(client: FlaskClient, query: str) -> None:
    sign_in(client)
    response = client.get(f"/login?{query}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_the_overview_lists_entries_queues_and_beat(client: FlaskClient) -> None:
    sign_in(client)
    response = client.get("/")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    for expected in ("ping", "every minute", "nightly", "at 02:30 every day", "pong"):
        assert expected in text, expected
    assert "The broker does not answer" in text
    assert "No beat holds the lease" in text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["Cache-Control"] == "no-store"


def test_a_post_without_the_session_csrf_token_changes_nothing(
    client: FlaskClient, store: Store
) -> None:
    sign_in(client)
    for token in (None, "forged"):
        data = {"back": "/"} if token is None else {"back": "/", "csrf_token": token}
        response = client.post("/entries/ping/pause", data=data)
        assert response.status_code == 400
        assert "This form has expired" in response.get_data(as_text=True)
    record = store.get_entry("ping")
    assert record is not None
    assert not record.paused


def test_pause_and_resume_from_the_page(client: FlaskClient, store: Store) -> None:
    sign_in(client)
    token = csrf_of(client.get("/").get_data(as_text=True))
    response = client.post("/entries/ping/pause", data={"csrf_token": token, "back": "/"})
    assert response.status_code == 302
    record = store.get_entry("ping")
    assert record is not None
    assert record.paused
    page = client.get("/").get_data(as_text=True)
    assert "Paused ping" in page
    assert "Resume<span" in page
    client.post("/entries/ping/resume", data={"csrf_token": token, "back": "/entries/ping"})
    record = store.get_entry("ping")
    assert record is not None
    assert not record.paused


def test_run_now_with_the_broker_down_says_so_and_starts_nothing(
    client: FlaskClient, store: Store
) -> None:
    sign_in(client)
    token = csrf_of(client.get("/").get_data(as_text=True))
    response = client.post(
        "/entries/ping/run", data={"csrf_token": token, "back": "/"}, follow_redirects=True
    )
    text = response.get_data(as_text=True)
    assert "ping was not started: the broker did not confirm" in text
    assert all(run.state == RunState.REVOKED for run in store.runs_for_entry("ping"))


def test_a_read_token_sees_but_cannot_act(client: FlaskClient, store: Store) -> None:
    sign_in(client, secret=READ_SECRET)
    page = client.get("/").get_data(as_text=True)
    assert "read-only" in page
    assert "Run now" not in page
    response = client.post("/entries/ping/pause", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 403
    record = store.get_entry("ping")
    assert record is not None
    assert not record.paused


def test_a_removed_token_ends_its_sessions(database: str, store: Store) -> None:
    first = create_app(make_settings(database, secret_key=KEY))
    client = first.test_client()
    sign_in(client)
    assert client.get("/").status_code == 200
    rotated = make_settings(database, secret_key=KEY).model_copy(
        update={"api": make_settings(database).api.model_copy(update={"tokens": []})}
    )
    second = create_app(rotated)
    cookie = client.get_cookie("periodic_session")
    assert cookie is not None
    other = second.test_client()
    other.set_cookie("periodic_session", cookie.value)
    assert other.get("/").status_code == 302
    for built in (first, second):
        built.extensions["periodic"].close()


def test_late_entries_and_failed_runs_stand_out(client: FlaskClient, store: Store) -> None:
    now = datetime.now(UTC)
    store.set_next_run("ping", now - timedelta(minutes=10))
    run = store.claim_manual_run("nightly", now - timedelta(seconds=30), "task-1", "low")
    store.record_run_started(run.task_id, "low@host", now - timedelta(seconds=29))
    store.record_run_finished(
        run.task_id,
        RunState.FAILED,
        now - timedelta(seconds=20),
        runtime=9.0,
        error_type="SMTPConnectError",
        error_message="mail server refused the connection",
    )
    sign_in(client)
    overview = client.get("/").get_data(as_text=True)
    row = re.search(r'<tr data-entry="ping" class="([^"]*)"', overview)
    assert row
    assert "row-late" in row.group(1)
    assert ">late<" in overview
    entry = client.get("/entries/nightly").get_data(as_text=True)
    assert "SMTPConnectError" in entry
    assert "mail server refused the connection" in entry
    assert "1 of the last 1 runs failed" in entry


def test_an_unknown_entry_is_a_404_page(client: FlaskClient) -> None:
    sign_in(client)
    response = client.get("/entries/nope")
    assert response.status_code == 404
    assert "There is no schedule entry named" in response.get_data(as_text=True)


def test_production_without_a_session_key_disables_only_the_dashboard(database: str) -> None:
    app = create_app(make_settings(database, environment="production"))
    client = app.test_client()
    response = client.get("/login")
    assert response.status_code == 503
    assert "PERIODIC_APP__SECRET_KEY" in response.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200
    app.extensions["periodic"].close()


def test_an_entry_in_error_says_so_on_its_page_and_in_the_overview(
    client: FlaskClient, store: Store
) -> None:
    now = datetime.now(UTC)
    fault = EntryFault("ping", "OverflowError: date value out of range", 2, now, now)
    store.record_entry_faults([fault])
    sign_in(client)
    page = client.get("/entries/ping").get_data(as_text=True)
    assert "Beat holds this entry in error" in page
    assert "OverflowError: date value out of range" in page
    assert 'title="OverflowError: date value out of range">error</span>' in client.get(
        "/"
    ).get_data(as_text=True)
    assert "Beat holds this entry" not in client.get("/entries/nightly").get_data(as_text=True)


def test_signing_out_revokes_the_session_for_every_copy_of_the_cookie(
    app: Flask, client: FlaskClient
) -> None:
    sign_in(client)
    cookie = client.get_cookie("periodic_session")
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie("periodic_session", cookie.value)
    assert copy.get("/").status_code == 200
    token = csrf_of(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302
    response = copy.get("/")
    assert response.status_code == 302, "a copied cookie outlived the sign-out"
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize(("environment", "secure"), [("production", True), ("development", False)])
def test_the_session_cookie_is_secure_outside_development(
    database: str, environment: str, secure: bool
) -> None:
    app = create_app(make_settings(database, environment=environment, secret_key=KEY))
    try:
        response = sign_in(app.test_client())
        assert response.status_code == 302
        assert ("Secure" in response.headers["Set-Cookie"]) is secure
    finally:
        app.extensions["periodic"].close()
