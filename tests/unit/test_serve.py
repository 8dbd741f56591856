"""The pieces of ``nox -s serve`` that need no broker: secrets, child commands, refusals."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from project.devtools.serve import (
    NO_BROKER_MESSAGE,
    StackEnvironment,
    child_environment,
    child_specs,
    development_secrets,
    ensure_secret_file,
    merged_tokens,
)
from scheduling.config.loading import load_settings
from scheduling.config.settings import ApiSettings

UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:9//"


def test_a_secret_file_is_private_long_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev-token"
    first = ensure_secret_file(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret_file(path) == first


def test_a_truncated_secret_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dev-token"
    path.write_text("short\n")
    path.chmod(0o644)
    value = ensure_secret_file(path)
    assert len(value) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_dev_token_joins_the_configured_tokens(
    write_settings: Callable[[str], Path],
) -> None:
    settings = load_settings(
        write_settings(
            """
            [api]
            tokens = [{ name = "ci", secret = "ci-secret-0123456789", scope = "read" }]
            """
        )
    )
    merged = json.loads(merged_tokens(settings, "d" * 43))
    assert merged == [
        {"name": "ci", "secret": "ci-secret-0123456789", "scope": "read"},
        {"name": "dev", "secret": "d" * 43, "scope": "write"},
    ]
    assert ApiSettings(tokens=merged).tokens[1].scope == "write"


def test_children_get_the_settings_file_broker_tokens_and_key() -> None:
    stack = StackEnvironment(Path("/x/settings.toml"), "amqp://local//", "[]", "k" * 40)
    env = child_environment({"PATH": "/bin"}, stack)
    assert env["PERIODIC_SETTINGS"] == "/x/settings.toml"
    assert env["PERIODIC_BROKER__URL"] == "amqp://local//"
    assert env["PERIODIC_API__TOKENS"] == "[]"
    assert env["PERIODIC_APP__SECRET_KEY"] == "k" * 40
    assert env["PATH"] == "/bin"
    quiet = child_environment({}, StackEnvironment(Path("/s.toml"), None, None, None))
    assert not {"PERIODIC_BROKER__URL", "PERIODIC_API__TOKENS"} & set(quiet)


def test_web_a_worker_per_queue_and_beat(write_settings: Callable[[str], Path]) -> None:
    settings = load_settings(write_settings(""))
    specs = child_specs(settings, {}, host="127.0.0.1", port=8123, python="py")
    assert [spec.name for spec in specs] == [
        "web",
        "worker-high",
        "worker-default",
        "worker-low",
        "beat",
    ]
    web, high = list(specs[0].argv), list(specs[1].argv)
    assert web[:4] == ["py", "-m", "gunicorn", "project.app:create_app()"]
    assert web[web.index("--bind") + 1] == "127.0.0.1:8123"
    assert web[web.index("-c") + 1] == "python:project.gunicorn_config"
    assert high[:6] == ["py", "-m", "celery", "-A", "project.worker:celery_app", "worker"]
    assert high[high.index("-Q") + 1] == "high"
    assert high[high.index("-n") + 1] == "high@%h"
    assert high[high.index("-c") + 1] == "2"
    assert list(specs[-1].argv)[5] == "beat"


def test_the_no_broker_message_says_how_to_get_one() -> None:
    text = NO_BROKER_MESSAGE.format(url="amqp://x", reason="", port=5673)
    assert "docker compose up -d rabbitmq" in text
    assert "apt-get install rabbitmq-server" in text
    assert "PERIODIC_BROKER__URL" in text


def _serve(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PERIODIC_")}
    return subprocess.run(
        [sys.executable, "-m", "project.devtools.serve", *args],
        cwd=workdir,
        env={**base, "NO_COLOR": "1", "PYTHONPATH": str(Path(__file__).parents[2]), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_a_broker_serve_exits_with_instructions(
    write_settings: Callable[[str], Path], tmp_path: Path
) -> None:
    path = write_settings('[broker]\nurl = "' + UNREACHABLE_BROKER + '"\n')
    result = _serve(tmp_path, "--no-broker", "--settings", str(path), "--port", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "docker compose up -d rabbitmq" in result.stdout
    assert "apt-get install rabbitmq-server" in result.stdout
    assert "guest:**@" in result.stdout  # the password is never printed
    assert not (tmp_path / "var" / "dev-token").exists()


def test_a_broken_settings_file_is_named_with_the_field(
    write_settings: Callable[[str], Path], tmp_path: Path
) -> None:
    path = write_settings('[beat]\nsync_interval = "soon"\n')
    result = _serve(tmp_path, "--settings", str(path))
    assert result.returncode == 1
    assert str(path) in result.stdout
    assert "beat.sync_interval" in result.stdout


def test_a_taken_port_is_refused_with_the_option_to_use(
    write_settings: Callable[[str], Path], tmp_path: Path
) -> None:
    path = write_settings("")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = _serve(tmp_path, "--settings", str(path), "--port", str(port))
    assert result.returncode == 1
    assert f"nox -s serve -- --port {port + 1}" in result.stdout


def test_development_gets_a_token_and_a_session_key(
    write_settings: Callable[[str], Path], tmp_path: Path
) -> None:
    settings = load_settings(write_settings('[app]\nenvironment = "development"\n'))
    token, tokens_json, secret_key = development_secrets(settings, tmp_path / "var")
    assert token == (tmp_path / "var" / "dev-token").read_text().strip()
    assert tokens_json is not None
    assert json.loads(tokens_json) == [{"name": "dev", "secret": token, "scope": "write"}]
    assert secret_key == (tmp_path / "var" / "secret-key").read_text().strip()


def test_production_gets_no_development_token_or_key(
    write_settings: Callable[[str], Path], tmp_path: Path
) -> None:
    settings = load_settings(write_settings('[app]\nenvironment = "production"\n'))
    assert development_secrets(settings, tmp_path / "var") == (None, None, None)
    assert not (tmp_path / "var").exists()


def test_a_configured_session_key_is_kept(
    write_settings: Callable[[str], Path], tmp_path: Path
) -> None:
    body = '[app]\nenvironment = "development"\nsecret_key = "' + "s" * 40 + '"\n'
    settings = load_settings(write_settings(body))
    assert development_secrets(settings, tmp_path / "var")[2] is None
