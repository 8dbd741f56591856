"""A team's own app (tests/team_app/acme) adopts Periodic in each of the three documented ways.

1. Its task modules in the reference service: ``[app].imports = ["acme.tasks"]`` with the
   reference worker and beat.
2. Its own Celery app: ``celery -A acme.celery_app:celery_app beat -S
   scheduling.scheduler:DatabaseScheduler`` and its own worker; the run is in the ledger.
3. Its own Flask app with ``Periodic(app)``: API (auth matrix) and dashboard under /periodic.

Plus the bad inputs: an unimportable module in ``imports``, a task the team's app does not
register and a ``-S`` beat with no settings file each stop with an error naming the file and the
field, exit non-zero, and dispatch nothing. Real RabbitMQ, real SQLite store, real processes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient

from scheduling.celery import init_celery
from scheduling.errors import ConfigError
from scheduling.flask import Periodic
from scheduling.store import RunRecord, RunState, Store
from tests.support.processes import ManagedProcess, clean_env
from tests.support.worker_stage import unique_queues

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
TEAM_APP = REPO_ROOT / "tests" / "team_app"
TEAM_CELERY = [sys.executable, "-m", "celery", "-A", "acme.celery_app:celery_app"]
QUIET_WORKER = ["--without-mingle", "--without-gossip"]
REFERENCE_CELERY = [sys.executable, "-m", "celery", "-A", "project.worker:celery_app"]
READ_SECRET = "acme-read-token-0123456789"
WRITE_SECRET = "acme-write-token-0123456789"
READ = {"Authorization": f"Bearer {READ_SECRET}"}
WRITE = {"Authorization": f"Bearer {WRITE_SECRET}"}

SETTINGS = """
[app]
database_url = "sqlite:///{db}"
{imports}

[broker]
url = "{broker}"
connect_timeout = "2s"

[queues."{default}"]
default = true

[queues."{low}"]
priority = 1

[beat]
sync_interval = "1s"
lease_ttl = "3s"

[api]
tokens = [
  {{ name = "acme-reader", secret = "{read}", scope = "read" }},
  {{ name = "acme-writer", secret = "{write}", scope = "write" }},
]

[schedule.refresh]
task = "{task}"
every = "1s"
kwargs = {{ region = "eu", full = true }}
catchup = "skip"
"""


def write_settings(
    directory: Path,
    broker_url: str,
    *,
    task: str = "acme.tasks.refresh_cache",
    imports: str = "",
) -> tuple[Path, str, dict[str, str]]:
    queues = unique_queues("default", "low")
    database = directory / "periodic.db"
    path = directory / "settings.toml"
    path.write_text(
        SETTINGS.format(
            db=database,
            imports=imports,
            broker=broker_url,
            read=READ_SECRET,
            write=WRITE_SECRET,
            task=task,
            **queues,
        )
    )
    return path, f"sqlite:///{database}", queues


def team_env(settings: Path | None) -> dict[str, str]:
    """The team's processes: its package and the checkout (for the reference service)."""
    extra = {"PYTHONPATH": os.pathsep.join([str(TEAM_APP), str(REPO_ROOT)])}
    if settings is not None:
        extra["PERIODIC_SETTINGS"] = str(settings)
    return clean_env(extra)


def wait_for_succeeded_run(database_url: str, entry: str, timeout: float) -> RunRecord:
    deadline = time.monotonic() + timeout
    store = Store.open(database_url)
    try:
        while True:
            runs = store.runs_for_entry(entry)
            done = [run for run in runs if run.state is RunState.SUCCEEDED]
            if done:
                return done[0]
            if time.monotonic() > deadline:
                states = [run.state.value for run in runs]
                raise AssertionError(f"no succeeded run of {entry} in {timeout}s: {states}")
            time.sleep(0.1)
    finally:
        store.close()


def worker_and_beat(
    celery: list[str], queue: str, directory: Path, env: dict[str, str]
) -> tuple[ManagedProcess, ManagedProcess]:
    worker = ManagedProcess(
        "worker",
        [*celery, "worker", "-Q", queue, "-c", "1", "-l", "INFO", *QUIET_WORKER],
        directory,
        env,
    )
    beat = ManagedProcess(
        "beat",
        [*celery, "beat", "-S", "scheduling.scheduler:DatabaseScheduler", "-l", "INFO"],
        directory,
        env,
    )
    return worker, beat


# --- 1. the team's task modules in the reference service ------------------------------------


def test_reference_worker_and_beat_run_the_teams_task_through_imports(
    tmp_path: Path, broker_url: str
) -> None:
    settings, database_url, queues = write_settings(
        tmp_path, broker_url, imports='imports = ["acme.tasks"]'
    )
    worker, beat = worker_and_beat(
        REFERENCE_CELERY, queues["default"], tmp_path, team_env(settings)
    )
    try:
        run = wait_for_succeeded_run(database_url, "refresh", timeout=60)
    finally:
        beat.stop()
        worker.stop()
    assert run.hostname
    assert "Task acme.tasks.refresh_cache[" in worker.output()


# --- 2. the team's own Celery app -------------------------------------------------------------


def test_the_teams_own_celery_app_runs_beat_and_worker_with_the_ledger(
    tmp_path: Path, broker_url: str
) -> None:
    settings, database_url, queues = write_settings(tmp_path, broker_url)
    worker, beat = worker_and_beat(TEAM_CELERY, queues["default"], tmp_path, team_env(settings))
    try:
        run = wait_for_succeeded_run(database_url, "refresh", timeout=60)
    finally:
        beat.stop()
        worker.stop()
    assert run.started_at is not None
    assert run.runtime is not None
    assert "refreshed eu (full)" in worker.output()
    # The worker consumed a Periodic queue although the team set its own task_queues.
    assert queues["default"] in worker.output()


# --- bad input: precise errors, non-zero exits, nothing dispatched ---------------------------


def run_beat_until_exit(
    celery: list[str], directory: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*celery, "beat", "-S", "scheduling.scheduler:DatabaseScheduler", "-l", "INFO"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_nothing_dispatched(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        assert store.runs_for_entry("refresh") == []
    finally:
        store.close()


def test_an_unimportable_module_in_imports_stops_beat_naming_file_and_field(
    tmp_path: Path, broker_url: str
) -> None:
    settings, database_url, _ = write_settings(
        tmp_path, broker_url, imports='imports = ["acme.tasks", "acme.missing_module"]'
    )
    result = run_beat_until_exit(REFERENCE_CELERY, tmp_path, team_env(settings))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(settings) in output
    assert "app.imports.1: cannot import 'acme.missing_module'" in output
    assert "Traceback" not in output
    if Path(database_url.removeprefix("sqlite:///")).exists():
        assert_nothing_dispatched(database_url)


def test_a_task_the_teams_app_does_not_register_stops_its_beat(
    tmp_path: Path, broker_url: str
) -> None:
    settings, database_url, _ = write_settings(tmp_path, broker_url, task="acme.tasks.refresh_cash")
    result = run_beat_until_exit(TEAM_CELERY, tmp_path, team_env(settings))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(settings) in output
    assert "schedule.refresh.task: 'acme.tasks.refresh_cash' is not a registered Celery task" in (
        output
    )
    assert "did you mean 'acme.tasks.refresh_cache'" in output
    if Path(database_url.removeprefix("sqlite:///")).exists():
        assert_nothing_dispatched(database_url)


def test_a_dash_s_beat_without_a_settings_file_says_which_file_is_missing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere" / "settings.toml"
    result = run_beat_until_exit(TEAM_CELERY, tmp_path, team_env(missing))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(missing) in output
    assert "Traceback" not in output


# --- 3. the team's own Flask app with the extension ------------------------------------------


def test_a_teams_celery_app_with_a_bad_settings_file_fails_the_extension_naming_file_and_field(
    tmp_path: Path,
) -> None:
    """Celery reads the file lazily and a Celery command exits with the message; the Flask
    extension, which is no command, raises the `ConfigError` itself."""
    settings = tmp_path / "settings.toml"
    settings.write_text('[app]\ntimezone = "Mars/Olympus"\n', encoding="utf-8")
    team_celery = Celery("acme-broken", set_as_current=False)
    init_celery(team_celery)
    app = Flask("acme-broken")
    app.config["PERIODIC_SETTINGS"] = str(settings)
    with pytest.raises(ConfigError) as raised:
        Periodic(app, celery=team_celery)
    assert str(settings) in str(raised.value)
    assert "app.timezone" in str(raised.value)


@pytest.fixture(scope="module")
def team_app(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[Flask]:
    """The team's Flask factory, in this process (one settings file: its Celery app is a
    module-level singleton configured once, as in the team's real processes)."""
    directory = tmp_path_factory.mktemp("team-web")
    settings, _, _ = write_settings(directory, broker_url)
    sys.path.insert(0, str(TEAM_APP))
    try:
        from acme.web import create_app

        app = create_app(str(settings))
        with app.app_context():  # as `flask --app acme.web …` runs its commands
            synced = app.test_cli_runner().invoke(args=["schedule", "sync"])
        assert synced.exit_code == 0, synced.output
        assert "1 created" in synced.output
        yield app
    finally:
        sys.path.remove(str(TEAM_APP))


@pytest.fixture
def team_client(team_app: Flask) -> FlaskClient:
    return team_app.test_client()


def test_the_api_is_mounted_under_periodic_with_the_auth_matrix(team_client: FlaskClient) -> None:
    api = "/periodic/api/v1/schedules"
    assert team_client.get(api).status_code == 401
    listed = team_client.get(api, headers=READ)
    assert listed.status_code == 200
    assert "refresh" in [item["name"] for item in listed.get_json()["items"]]
    body = {"name": "invoice-7", "task": "acme.tasks.send_invoice", "args": [7], "every": "1h"}
    assert team_client.post(api, json=body, headers=READ).status_code == 403
    created = team_client.post(api, json=body, headers=WRITE)
    assert created.status_code == 201, created.get_json()
    unknown = team_client.post(
        api, json={**body, "name": "nope", "task": "acme.tasks.nope"}, headers=WRITE
    )
    assert unknown.status_code == 422
    assert "acme.tasks.nope" in unknown.get_data(as_text=True)
    run = team_client.post("/periodic/api/v1/schedules/invoice-7/run", headers=WRITE)
    assert run.status_code == 202, run.get_json()
    assert team_client.delete(f"{api}/invoice-7", headers=WRITE).status_code == 204


def test_the_dashboard_is_mounted_under_periodic_and_leaves_the_teams_routes_alone(
    team_client: FlaskClient,
) -> None:
    assert team_client.get("/").get_data(as_text=True) == "acme home"
    assert team_client.get("/periodic/healthz").status_code == 200
    first = team_client.get("/periodic/")
    assert first.status_code == 302
    assert first.headers["Location"].startswith("/periodic/login")
    login = team_client.get("/periodic/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf, "no CSRF field on the login page"
    signed_in = team_client.post(
        "/periodic/login", data={"csrf_token": csrf.group(1), "token": READ_SECRET}
    )
    assert signed_in.status_code == 302
    page = team_client.get("/periodic/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "refresh" in html
    assert "/periodic/static/dashboard.css" in html
    with team_client.get("/periodic/static/dashboard.css") as stylesheet:
        assert stylesheet.status_code == 200


def test_cli_groups_are_registered_on_the_teams_app_only(team_app: Flask) -> None:
    commands = set(team_app.cli.list_commands(None))  # type: ignore[arg-type]
    assert {"schedule", "queues", "hello"} <= commands
    assert team_app.config["SESSION_COOKIE_NAME"] == "session"  # the team's cookie, untouched
    other = Flask("someone-else")
    assert "schedule" not in other.cli.list_commands(None)  # type: ignore[arg-type]


def test_flask_schedule_check_validates_against_the_teams_registry(
    tmp_path: Path, broker_url: str
) -> None:
    settings, _, _ = write_settings(tmp_path, broker_url)
    flask = Path(sys.executable).with_name("flask")
    env = team_env(settings)
    ok = subprocess.run(
        [str(flask), "--app", "acme.web:create_app", "schedule", "check"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "acme.tasks.refresh_cache" in ok.stdout
    other = tmp_path / "other"
    other.mkdir()
    broken, _, _ = write_settings(other, broker_url, task="acme.tasks.refresh_cash")
    check = [str(flask), "--app", "acme.web:create_app", "schedule", "check"]
    bad = subprocess.run(
        [*check, "--settings", str(broken)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "schedule.refresh.task" in bad.stderr
    assert str(broken) in bad.stderr
