"""compose.yaml and the Dockerfile keep the README's promises (no Docker engine needed).

The file is parsed, every promised service is checked for its image, command, healthcheck and
dependencies, and the environment each Periodic service gets is fed through `load_settings`
with the shipped settings.toml, so a variable name or value the settings would reject fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduling.config.durations import parse_duration
from scheduling.config.loading import load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
COMPOSE_OVERRIDE = REPO / "compose.override.yaml"
COMPOSE_LOCAL = REPO / "compose.local.yaml"
DOCKERFILE = REPO / "Dockerfile"
README = REPO / "README.md"

BACKING = {"rabbitmq", "postgres"}
WORKERS = {"worker-high": "high", "worker-default": "default", "worker-low": "low"}
BEATS = {"beat-1", "beat-2"}
APP_SERVICES = {"web", *WORKERS, *BEATS}
SECRETS = (
    "PERIODIC_BROKER__URL",
    "PERIODIC_APP__DATABASE_URL",
    "PERIODIC_API__TOKENS",
    "PERIODIC_APP__SECRET_KEY",
)
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}|\$(\w+)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR:?message}`` / ``$$`` rules, enough for this file."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        if name in env and env[name] != "":
            return env[name]
        if match.group(2) == "?":
            raise AssertionError(f"{name} is required: {match.group(3)}")
        return match.group(3) or ""

    parts = value.split("$$")
    return "$".join(_VARIABLE.sub(replace, part) for part in parts)


def published_ports() -> dict[str, list[Any]]:
    """compose.override.yaml's ports per service (`docker compose up` loads it by itself)."""
    services = yaml.safe_load(COMPOSE_OVERRIDE.read_text(encoding="utf-8"))["services"]
    return {name: list(service.get("ports", [])) for name, service in services.items()}


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else str(command).split()


def test_every_promised_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == BACKING | APP_SERVICES


def test_rabbitmq_is_pinned_with_management_and_its_own_user_and_vhost(
    services: dict[str, dict[str, Any]],
) -> None:
    rabbit = services["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:(3\.1[0-9]|4\.[0-9]+)(\.\d+)?-management", rabbit["image"])
    env = rabbit["environment"]
    assert env["RABBITMQ_DEFAULT_USER"] not in {"", "guest"}
    assert env["RABBITMQ_DEFAULT_VHOST"] not in {"", "/"}
    assert "rabbitmq-diagnostics" in " ".join(rabbit["healthcheck"]["test"])


def test_postgres_is_pinned_and_checked(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?(-[a-z]+)?", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_periodic_services_build_the_image_and_wait_for_healthy_backing_services(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"] == ".", name
        assert service["image"] == "periodic:latest", name
        for backing in BACKING:
            assert service["depends_on"][backing] == {"condition": "service_healthy"}, name


def test_web_runs_gunicorn_with_a_liveness_check_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    """/readyz fails while a worker or beat is down; as a healthcheck it would restart-loop web."""
    web = services["web"]
    assert command_of(web)[:2] == ["gunicorn", "project.app:create_app()"]
    # The server model nox -s serve runs and nox -s bench measures (threads, not sync workers).
    assert command_of(web)[command_of(web).index("-c") + 1] == "python:project.gunicorn_config"
    check = " ".join(web["healthcheck"]["test"])
    assert "/healthz" in check
    assert "/readyz" not in check
    (port,) = published_ports()["web"]
    assert interpolate(str(port), {}) == "127.0.0.1:8000:8000"
    assert interpolate(str(port), {"PERIODIC_WEB_ADDRESS": "0.0.0.0"}) == "0.0.0.0:8000:8000"


def test_every_published_port_is_on_loopback_by_default() -> None:
    for name, ports in published_ports().items():
        for port in ports:
            assert interpolate(str(port), {}).startswith("127.0.0.1:"), (name, port)


def test_stopping_a_worker_lets_running_tasks_finish(services: dict[str, dict[str, Any]]) -> None:
    """`docker compose stop`: SIGTERM (Celery's warm shutdown), SIGKILL after the grace."""
    limit = load_settings(REPO / "settings.toml").worker.time_limit
    for name in WORKERS:
        grace = parse_duration(services[name]["stop_grace_period"])
        assert grace >= limit, (name, grace, limit)


def test_beats_have_a_healthcheck_that_asks_the_store(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in BEATS:
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "scheduling.beat.probe"], name


def test_no_top_level_name_so_compose_v1_reads_it(compose: dict[str, Any]) -> None:
    assert "name" not in compose
    assert "version" not in compose


def test_passwords_are_required(services: dict[str, dict[str, Any]]) -> None:
    rabbit = services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"]
    with pytest.raises(AssertionError, match="RABBITMQ_PASSWORD"):
        interpolate(rabbit, {})
    database = services["web"]["environment"]["PERIODIC_APP__DATABASE_URL"]
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        interpolate(database, {})


def test_compose_itself_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config` (v2) or `docker-compose config` (v1), where one is installed."""
    commands = []
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        commands.append([docker, "compose"])
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    if not commands:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {**os.environ, "RABBITMQ_PASSWORD": "r", "POSTGRES_PASSWORD": "p"}
    for command in commands:
        result = subprocess.run(
            [*command, "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stderr)
        missing = subprocess.run(
            [*command, "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            env={k: v for k, v in env.items() if k != "RABBITMQ_PASSWORD"},
            cwd=tmp_path,
            timeout=60,
        )
        assert missing.returncode != 0
        assert "RABBITMQ_PASSWORD" in missing.stderr + missing.stdout


def test_a_worker_per_shipped_queue_checked_by_inspect_ping(
    services: dict[str, dict[str, Any]],
) -> None:
    shipped = load_settings(REPO / "settings.toml")
    assert set(WORKERS.values()) == set(shipped.queues)
    concurrency = {}
    for name, queue in WORKERS.items():
        command = command_of(services[name])
        assert command[:4] == ["celery", "-A", "project.worker:celery_app", "worker"], name
        assert command[command.index("-Q") + 1] == queue
        assert command[command.index("-n") + 1] == f"{queue}@%h"
        concurrency[queue] = int(command[command.index("-c") + 1])
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "celery -A project.worker:celery_app inspect ping" in check
        assert f"-d {queue}@$$HOSTNAME" in check  # $$: the container's shell expands it
    assert concurrency["high"] > max(concurrency["default"], concurrency["low"])


def test_two_beats_run_the_database_scheduler(services: dict[str, dict[str, Any]]) -> None:
    for name in BEATS:
        command = command_of(services[name])
        assert command[:4] == ["celery", "-A", "project.worker:celery_app", "beat"]
        assert command[command.index("-S") + 1] == "scheduling.beat.scheduler:DatabaseScheduler"


def test_secrets_arrive_as_environment_variables_the_settings_accept(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = {
        "RABBITMQ_PASSWORD": "rabbit-secret",
        "POSTGRES_PASSWORD": "pg-secret",
        "PERIODIC_APP__SECRET_KEY": "k" * 40,
        "PERIODIC_API__TOKENS": json.dumps([{"name": "ops", "secret": "s" * 32, "scope": "write"}]),
    }
    rabbit = services["rabbitmq"]["environment"]
    for name in APP_SERVICES:
        env = {
            key: interpolate(str(value), host)
            for key, value in services[name]["environment"].items()
        }
        assert set(SECRETS) <= set(env), name
        for key in list(os.environ):
            if key.startswith("PERIODIC_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("PERIODIC_") and key != "PERIODIC_SETTINGS":
                monkeypatch.setenv(key, value)
        settings = load_settings(REPO / "settings.toml")
        assert settings.app.environment == "production"
        assert settings.beat.scheduler == "database"
        broker = settings.broker.url.get_secret_value()
        user = interpolate(rabbit["RABBITMQ_DEFAULT_USER"], host)
        vhost = interpolate(rabbit["RABBITMQ_DEFAULT_VHOST"], host)
        assert broker == f"amqp://{user}:rabbit-secret@rabbitmq:5672/{vhost}"
        database = settings.app.database_url.get_secret_value()
        assert database.startswith("postgresql+psycopg://periodic:pg-secret@postgres:5432/")
        assert [token.name for token in settings.api.tokens] == ["ops"]
        assert settings.app.secret_key is not None


def test_without_host_secrets_no_token_works(services: dict[str, dict[str, Any]]) -> None:
    passwords = {"RABBITMQ_PASSWORD": "r", "POSTGRES_PASSWORD": "p"}
    env = {
        key: interpolate(str(value), passwords)
        for key, value in services["web"]["environment"].items()
    }
    assert json.loads(env["PERIODIC_API__TOKENS"]) == []
    assert env["PERIODIC_APP__SECRET_KEY"] == ""


def test_the_readme_names_every_service() -> None:
    text = README.read_text(encoding="utf-8")
    if "docker compose up" not in text:
        pytest.fail("README.md has no 'docker compose up' section describing compose.yaml")
    missing = [name for name in sorted(BACKING | APP_SERVICES) if f"`{name}`" not in text]
    assert not missing, f"README.md does not describe these compose services: {missing}"


def test_the_dockerfile_is_slim_cached_and_non_root() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # The base is an ARG so that `nox -s images` can build FROM a Debian-built Python.
    arg, _, default = lines[0].partition("=")
    assert arg == "ARG PYTHON_IMAGE"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", default)
    assert lines[1] == "FROM ${PYTHON_IMAGE}"
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    copies = [line for line in lines if line.startswith("COPY ")]
    installs = [index for index, line in enumerate(lines) if "pip install" in line]
    dependency_copy = lines.index("COPY pyproject.toml ./")
    code_copy = min(
        lines.index(line) for line in copies if {"project", "scheduling"} & set(line.split()[1:-1])
    )
    assert dependency_copy < installs[0] < code_copy, "dependencies must be a layer of their own"
    assert lines.index(f"USER {users[-1]}") > installs[-1]


def test_the_dockerignore_keeps_state_and_history_out() -> None:
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", "var", ".nox", "tests"} <= ignored


def test_compose_v1_accepts_the_files_and_the_local_override_needs_no_registry() -> None:
    """Debian's docker-compose 1.29 (the one these machines can install) parses both setups."""
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert "name" not in document, "Compose v1 rejects a top-level name:"
    local = yaml.safe_load(COMPOSE_LOCAL.read_text(encoding="utf-8"))["services"]
    assert set(local) == BACKING | APP_SERVICES
    for name, service in local.items():
        assert service.get("network_mode") == "host", name
        # Host networking refuses published ports, and an override cannot remove them.
        assert "ports" not in document["services"][name], name
    compose_v1 = shutil.which("docker-compose")
    if compose_v1 is None:
        pytest.skip("docker-compose (v1) is not installed: apt-get install docker-compose")
    env = {**os.environ, "RABBITMQ_PASSWORD": "r", "POSTGRES_PASSWORD": "p"}
    # No --file: compose.yaml + compose.override.yaml, what `docker compose up` reads.
    for files in ([], ["compose.yaml", "compose.local.yaml"]):
        argv = [compose_v1, *(f"--file={name}" for name in files), "config"]
        result = subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{files}: {result.stderr}"
        published = {
            name: service.get("ports")
            for name, service in yaml.safe_load(result.stdout)["services"].items()
        }
        if files:
            assert not any(published.values()), published
        else:
            assert published["web"], published
            assert published["rabbitmq"], published
