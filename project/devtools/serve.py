"""``python -m project.devtools.serve`` (``nox -s serve``): all of Periodic on one machine.

Web (gunicorn), one Celery worker per queue in the settings and beat run as separate processes
under `project.devtools.supervisor`, exactly as they would in production, so what works here
works there.
The broker is the one in the settings when it answers, else a throwaway local RabbitMQ node under
``var/rabbitmq`` when the ``rabbitmq-server`` package is installed; otherwise serve says how to
get one. In development it writes a write token and a session key under ``var/`` on first run and
hands them to the children through ``PERIODIC_*`` variables, so nothing needs configuring first.

This module is an edge: it reads the environment to build the children's environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

from kombu.utils.url import maybe_sanitize_url

from project.devtools.localbroker import LocalRabbitNode, broker_answers, rabbitmq_server_available
from project.devtools.supervisor import ChildSpec, Supervisor
from project.errors import BrokerNodeError, ServeError
from scheduling.broker.nodes import sanitize_nodes
from scheduling.config.loading import SETTINGS_ENV, load_settings, settings_path
from scheduling.config.settings import Settings
from scheduling.errors import ConfigError

__all__ = [
    "DEFAULT_PORT",
    "LOCAL_BROKER_PORT",
    "NO_BROKER_MESSAGE",
    "StackEnvironment",
    "child_environment",
    "child_specs",
    "development_secrets",
    "ensure_secret_file",
    "main",
    "merged_tokens",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8000
LOCAL_BROKER_PORT: Final = 5673
CELERY_APP: Final = "project.worker:celery_app"
CHECKOUT: Final = Path(__file__).resolve().parents[2]
"""The directory holding the `project` package."""
WEB_APP: Final = "project.app:create_app()"
WEB_CONFIG: Final = "python:project.gunicorn_config"
"""gthread workers x threads, the server model `nox -s bench` measures (see that module)."""
DEV_TOKEN_NAME: Final = "dev"  # noqa: S105 (a name, not a secret)
DEV_TOKEN_FILE: Final = "dev-token"  # noqa: S105
SECRET_KEY_FILE: Final = "secret-key"  # noqa: S105
WORKER_CONCURRENCY: Final = 2

NO_BROKER_MESSAGE: Final = """\
No RabbitMQ: the broker in the settings ({url}) does not answer{reason}.
Get one, then run `nox -s serve` again:
  * RABBITMQ_PASSWORD=… POSTGRES_PASSWORD=… docker compose up -d rabbitmq
      then: export PERIODIC_BROKER__URL=amqp://periodic:$RABBITMQ_PASSWORD@127.0.0.1:5672/periodic
  * apt-get install rabbitmq-server
      serve then starts a throwaway node under var/rabbitmq on port {port} by itself
      (the system service may stay stopped)
  * or point PERIODIC_BROKER__URL at a broker you run."""


@dataclass(frozen=True)
class StackEnvironment:
    """What every child is told, on top of the inherited environment."""

    settings_file: Path
    broker_url: str | None
    """Set only when serve chose a broker other than the settings' one."""
    tokens_json: str | None
    secret_key: str | None


def ensure_secret_file(path: Path, nbytes: int = 32) -> str:
    """The secret stored in ``path`` (mode 0600), made with `secrets` on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        value = path.read_text().strip()
        if len(value) >= 32:
            return value
        path.unlink()  # truncated or edited by hand: make a proper one
        return ensure_secret_file(path, nbytes)
    value = secrets.token_urlsafe(nbytes)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value


def merged_tokens(settings: Settings, dev_secret: str) -> str:
    """``PERIODIC_API__TOKENS``: the configured tokens plus the development write token.

    The variable replaces the file's list as a whole, so the configured ones are carried over.
    """
    tokens = [
        {"name": token.name, "secret": token.secret.get_secret_value(), "scope": token.scope}
        for token in settings.api.tokens
    ]
    if all(token["secret"] != dev_secret for token in tokens):
        tokens.append({"name": DEV_TOKEN_NAME, "secret": dev_secret, "scope": "write"})
    return json.dumps(tokens)


def development_secrets(
    settings: Settings, var_dir: Path
) -> tuple[str | None, str | None, str | None]:
    """(dev token, ``PERIODIC_API__TOKENS``, session key) in development; nothing in production.

    Production must bring its own tokens and key: a token lying around in var/ must not work there.
    """
    if settings.app.environment != "development":
        return None, None, None
    token = ensure_secret_file(var_dir / DEV_TOKEN_FILE)
    secret_key = None
    if settings.app.secret_key is None:
        secret_key = ensure_secret_file(var_dir / SECRET_KEY_FILE)
    return token, merged_tokens(settings, token), secret_key


def child_environment(base: Mapping[str, str], stack: StackEnvironment) -> dict[str, str]:
    env = dict(base)
    # The reference service runs from the checkout, not from site-packages: children started in
    # another directory find `project` through PYTHONPATH.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), base.get("PYTHONPATH")]))
    env[SETTINGS_ENV] = str(stack.settings_file)
    env["PYTHONUNBUFFERED"] = "1"
    if stack.broker_url is not None:
        env["PERIODIC_BROKER__URL"] = stack.broker_url
    if stack.tokens_json is not None:
        env["PERIODIC_API__TOKENS"] = stack.tokens_json
    if stack.secret_key is not None:
        env["PERIODIC_APP__SECRET_KEY"] = stack.secret_key
    return env


def worker_argv(python: str, queue: str) -> list[str]:
    return [
        python, "-m", "celery", "-A", CELERY_APP, "worker",
        "-Q", queue, "-n", f"{queue}@%h", "-c", str(WORKER_CONCURRENCY),
        "--loglevel", "INFO",
    ]  # fmt: skip


def child_specs(
    settings: Settings, env: Mapping[str, str], *, host: str, port: int, python: str
) -> list[ChildSpec]:
    """web, ``worker-<queue>`` for every queue, then beat: the commands of SPEC §2."""
    web = ChildSpec(
        "web",
        [
            python, "-m", "gunicorn", WEB_APP,
            "-c", WEB_CONFIG,
            "--bind", f"{host}:{port}",
            "--access-logfile", "-",
            "--graceful-timeout", "10",
        ],
        env,
    )  # fmt: skip
    workers = [
        ChildSpec(f"worker-{queue}", worker_argv(python, queue), env) for queue in settings.queues
    ]
    beat = ChildSpec(
        "beat", [python, "-m", "celery", "-A", CELERY_APP, "beat", "--loglevel", "INFO"], env
    )
    return [web, *workers, beat]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _answers(url: str) -> tuple[bool, str]:
    try:
        return broker_answers(url, timeout=3.0), ""
    except ValueError as error:
        return False, f" ({error})"


def choose_broker(
    settings: Settings, var_dir: Path, *, allow_local: bool, supervisor: Supervisor
) -> tuple[str | None, LocalRabbitNode | None]:
    """(URL override or None, the node we started or None); `ServeError` saying how to get one."""
    url = settings.broker.url.get_secret_value()
    shown = sanitize_nodes(url)
    supervisor.log(f"checking the broker at {shown} …")
    answers, reason = _answers(url)
    if answers:
        return None, None
    message = NO_BROKER_MESSAGE.format(url=shown, reason=reason, port=LOCAL_BROKER_PORT)
    if not allow_local:
        raise ServeError(message + "\n(--no-broker was given, so no local node was started.)")
    if not rabbitmq_server_available():
        raise ServeError(message)
    if not _port_free(DEFAULT_HOST, LOCAL_BROKER_PORT):
        raise ServeError(
            f"The settings' broker ({shown}) does not answer and port {LOCAL_BROKER_PORT}, where "
            "serve starts its own RabbitMQ node, is taken (another `nox -s serve`?). Stop that "
            "process, or set PERIODIC_BROKER__URL to a broker that runs."
        )
    node = LocalRabbitNode(var_dir / "rabbitmq", port=LOCAL_BROKER_PORT)
    supervisor.log(
        f"{shown} does not answer: starting a throwaway RabbitMQ node under "
        f"{var_dir / 'rabbitmq'} on port {LOCAL_BROKER_PORT} (takes a few seconds) …"
    )
    try:
        node.start()
    except BrokerNodeError as error:
        raise ServeError(f"{error}\n\n{message}") from error
    supervisor.log(f"local RabbitMQ node {node.node_name} is up")
    return node.url, node


def _colour_wanted() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty()


def _web_answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=0.5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m project.devtools.serve",
        description="Run web, a worker per queue and beat as separate processes; Ctrl-C stops all.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="web bind address (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="web port (default %(default)s)"
    )
    parser.add_argument(
        "--no-broker",
        action="store_true",
        help="never start a local RabbitMQ node; fail if the settings' broker does not answer",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="settings file (default: $PERIODIC_SETTINGS, else ./settings.toml)",
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=Path("var"),
        help="development state: token, key, local broker (default ./var)",
    )
    return parser.parse_args(argv)


def _banner(
    args: argparse.Namespace, settings: Settings, token: str | None, var_dir: Path, broker: str
) -> str:
    base = f"http://{args.host}:{args.port}"
    lines = [
        "Periodic is running.",
        f"  dashboard  {base}/",
        f"  API        {base}/api/v1   (Authorization: Bearer <token>)",
        f"  broker     {broker}",
        f"  database   {maybe_sanitize_url(settings.app.database_url.get_secret_value())}",
    ]
    if token is not None:
        lines.append(f"  token      {token}   (write; kept in {var_dir / DEV_TOKEN_FILE})")
    else:
        lines.append("  token      use one of the [api] tokens of your settings")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    var_dir: Path = args.var_dir.absolute()
    supervisor = Supervisor(colour=_colour_wanted())
    signal.signal(signal.SIGTERM, _raise_interrupt)  # until the children run: unwind like Ctrl-C
    node: LocalRabbitNode | None = None
    try:
        path = settings_path(args.settings).absolute()
        try:
            settings = load_settings(path)
        except ConfigError as error:
            raise ServeError(f"{error}\nFix the file, then run `nox -s serve` again.") from None
        if not _port_free(args.host, args.port):
            raise ServeError(
                f"{args.host}:{args.port} is already in use (another `nox -s serve`?); stop that "
                f"process or pick another port: nox -s serve -- --port {args.port + 1}"
            )
        broker_override, node = choose_broker(
            settings, var_dir, allow_local=not args.no_broker, supervisor=supervisor
        )
        token, tokens_json, secret_key = development_secrets(settings, var_dir)
        stack = StackEnvironment(path, broker_override, tokens_json, secret_key)
        env = child_environment(os.environ, stack)
        specs = child_specs(settings, env, host=args.host, port=args.port, python=sys.executable)
        broker_shown = sanitize_nodes(broker_override or settings.broker.url.get_secret_value())
        if node is not None:
            broker_shown += f"   (throwaway node under {node.base_dir})"
        banner = _banner(args, settings, token, var_dir, broker_shown)
        return _supervise(supervisor, specs, lambda: _web_answers(args.host, args.port), banner)
    except ServeError as error:
        supervisor.log(str(error), loud=True)
        return 1
    except KeyboardInterrupt:
        supervisor.log("interrupted")
        return 130
    finally:
        # Shutting down already: a further Ctrl-C must not cut the node's stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            supervisor.log("stopping the local RabbitMQ node …")
            with contextlib.suppress(BrokerNodeError):
                node.stop()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _supervise(
    supervisor: Supervisor, specs: list[ChildSpec], web_ready: Callable[[], bool], banner: str
) -> int:
    stop = threading.Event()
    received: list[str] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if received:
            supervisor.log("already stopping; waiting for the children to exit")
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    announced = False

    def announce() -> None:
        nonlocal announced
        if not announced and web_ready():
            announced = True
            supervisor.log(banner)

    died = None
    try:
        supervisor.start(specs)
        died = supervisor.wait(stop, on_tick=announce)
        if died is not None:
            supervisor.log(
                f"{died.spec.name} (pid {died.pid}) died: {died.exit_status()}. Its log is above. "
                "Stopping everything; nothing is restarted automatically.",
                loud=True,
            )
        else:
            supervisor.log(f"{received[0]} received: stopping every process …")
    finally:
        supervisor.stop()
    if died is not None:
        return 1
    supervisor.log("all processes stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
