"""compose.yaml for real: the whole stack under Debian's docker-compose 1.29, host-networked.

`docker-compose -f compose.yaml -f compose.local.yaml up -d` with the images `nox -s images`
built brings up RabbitMQ, PostgreSQL, web, a worker per queue and two beats on free loopback
ports; the tests then use it as an operator would, through the HTTP API and Compose itself:
a run-now succeeds, killing the leading beat's container hands the lease to the other, and
`docker-compose stop` lets a running task finish. The stack is shared by the tests of this module
(bringing it up is the slow part) and removed with its volumes afterwards; every container's log
is kept in test-artifacts/.

Skipped, saying why, where no Docker engine answers (`nox -s images` starts a private one where
it can), where the images are missing, or without docker-compose.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from project.devtools.engine import find_engine
from project.devtools.images import image_set, missing_images
from project.devtools.localbroker import free_ports
from project.errors import ImageBuildError
from tests.support.reaper import compose_project, reap_orphans

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
SERVICES = ("rabbitmq", "postgres", "web", "worker-high", "worker-default", "worker-low")
BEATS = {"periodic-beat-1": "beat-1", "periodic-beat-2": "beat-2"}  # hostname -> service
UP_TIMEOUT = 300.0


@dataclass
class ComposeStack:
    """One Compose project of the stack and the ways a test talks to it."""

    compose_v1: str
    project: str
    env: dict[str, str]
    web_port: int
    token: str = field(repr=False)

    def argv(self, *args: str) -> list[str]:
        """``docker-compose -p <project> -f compose.yaml -f compose.local.yaml <args>``."""
        files = ("--file=compose.yaml", "--file=compose.local.yaml")
        return [self.compose_v1, f"--project-name={self.project}", *files, *args]

    def compose(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def docker(self, *args: str) -> str:
        docker = shutil.which("docker") or "docker"
        result = subprocess.run(
            [docker, *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result.stdout.strip()

    def container(self, service: str) -> str:
        result = self.compose("ps", "-q", service)
        assert result.returncode == 0, f"{service}: {result.stderr}"
        assert result.stdout.strip(), f"no container for {service}"
        return result.stdout.strip()

    def state(self, service: str) -> str:
        """``healthy``/``starting``/``unhealthy``, or the plain state for unchecked services."""
        return self.docker(
            "inspect",
            "--format",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
            self.container(service),
        )

    def container_log(self, container: str) -> str:
        """The last lines a container wrote, stdout and stderr together."""
        docker = shutil.which("docker") or "docker"
        result = subprocess.run(
            [docker, "logs", "--tail=30", container],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout + result.stderr

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail=200").stdout

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http only)
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def await_run(self, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status, run = self.api("GET", f"/runs/{task_id}")
            if status == 200 and run["state"] in {"succeeded", "failed", "revoked", "expired"}:
                return dict(run)
            assert time.monotonic() < deadline, f"run {task_id} did not finish: {status} {run}"
            time.sleep(0.5)


def _engine_and_images() -> tuple[str, str, dict[str, str]]:
    compose_v1 = shutil.which("docker-compose")
    if compose_v1 is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    host = find_engine()
    if host is None:
        pytest.skip(
            "no Docker engine answers (DOCKER_HOST, /var/run/docker.sock or the private engine "
            "that `nox -s images` starts where it can)"
        )
    try:
        images = image_set()
    except ImageBuildError as error:
        pytest.skip(f"no image names for this machine: {error}")
    missing = missing_images(host, images)
    if missing:
        pytest.skip(f"images {missing} are missing on {host}: run `nox -s images`")
    return compose_v1, host, images.environment()


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    compose_v1, host, image_env = _engine_and_images()
    reap_orphans(host)  # stacks of test processes that were killed before their cleanup
    amqp, dist, epmd, management, postgres, web = free_ports(6, set())
    token = secrets.token_hex(24)
    env = {
        **os.environ,
        **image_env,
        "DOCKER_HOST": host,
        "PERIODIC_LOCAL_AMQP_PORT": str(amqp),
        "PERIODIC_LOCAL_RABBITMQ_DIST_PORT": str(dist),
        "PERIODIC_LOCAL_EPMD_PORT": str(epmd),
        "PERIODIC_LOCAL_RABBITMQ_MANAGEMENT_PORT": str(management),
        "PERIODIC_LOCAL_POSTGRES_PORT": str(postgres),
        "PERIODIC_LOCAL_WEB_PORT": str(web),
        "RABBITMQ_PASSWORD": secrets.token_hex(12),
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "PERIODIC_APP__SECRET_KEY": secrets.token_hex(24),
        "PERIODIC_API__TOKENS": json.dumps([{"name": "e2e", "secret": token, "scope": "write"}]),
        "PERIODIC_WEBHOOKS__ALLOWED_HOSTS": json.dumps(["127.0.0.1"]),
    }
    running = ComposeStack(compose_v1, compose_project(secrets.token_hex(3)), env, web, token)
    try:
        up = running.compose("up", "--detach", "--no-build", timeout=UP_TIMEOUT)
        assert up.returncode == 0, f"docker-compose up failed:\n{up.stderr}"
        _await_healthy(running)
        yield running
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"compose-{running.project}.log").write_text(running.logs())
        running.compose("down", "--volumes", "--timeout=10")


def _await_healthy(stack: ComposeStack) -> None:
    deadline = time.monotonic() + UP_TIMEOUT
    while True:
        states = {service: stack.state(service) for service in (*SERVICES, *BEATS.values())}
        # "running" is the state of a container without a healthcheck (none in compose.yaml now).
        waiting = {s: state for s, state in states.items() if state not in {"healthy", "running"}}
        if not waiting:
            return
        broken = {s: state for s, state in waiting.items() if state in {"unhealthy", "exited"}}
        if broken or time.monotonic() > deadline:
            pytest.fail(f"the stack is not healthy: {waiting}\n{stack.logs()[-6000:]}")
        time.sleep(2.0)


def test_a_run_now_through_the_api_succeeds(stack: ComposeStack) -> None:
    status, body = stack.api("POST", "/schedules/heartbeat/run")
    assert status == 202, body
    run = stack.await_run(body["task_id"])
    assert run["state"] == "succeeded", run
    assert run["queue"] == "high"


def test_killing_the_leading_beats_container_hands_over(stack: ComposeStack) -> None:
    leader = _live_leader(stack, deadline=time.monotonic() + 60.0)
    killed = BEATS[leader.split(":", 1)[0]]
    stack.docker("kill", stack.container(killed))
    deadline = time.monotonic() + 60.0
    successor = _live_leader(stack, deadline, not_holder=leader)
    assert BEATS[successor.split(":", 1)[0]] != killed, (leader, successor)


def _live_leader(stack: ComposeStack, deadline: float, not_holder: str | None = None) -> str:
    while True:
        status, beat = stack.api("GET", "/beat")
        assert status == 200, beat
        lease = beat["leader"]
        if lease and lease["live"] and lease["holder"] != not_holder:
            return str(lease["holder"])
        assert time.monotonic() < deadline, f"no live leader other than {not_holder}: {beat}"
        time.sleep(0.5)


class _SlowHook(BaseHTTPRequestHandler):
    """Answers a webhook only once the test releases it: the task is running until then."""

    arrived = threading.Event()
    release = threading.Event()
    answered = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).arrived.set()
        type(self).release.wait(timeout=60)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        type(self).answered.set()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_stop_lets_a_running_task_finish(stack: ComposeStack) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        entry = {
            "name": "e2e-slow-hook",
            "task": "scheduling.tasks.webhooks.call_webhook",
            "cron": "0 0 1 1 *",
            "queue": "low",
            "kwargs": {"url": url, "timeout": "30s"},
        }
        status, body = stack.api("POST", "/schedules", entry)
        assert status == 201, body
        status, body = stack.api("POST", "/schedules/e2e-slow-hook/run")
        assert status == 202, body
        assert _SlowHook.arrived.wait(timeout=60), "the webhook task never started"

        worker = stack.container("worker-low")
        stop = subprocess.Popen(
            stack.argv("stop", "worker-low"),
            cwd=REPO,
            env=stack.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20.0
        while "Warm shutdown" not in stack.container_log(worker):
            assert time.monotonic() < deadline, "the worker never began its warm shutdown"
            time.sleep(0.2)
        assert stop.poll() is None, "stop returned while the task was still running"
        _SlowHook.release.set()
        assert stop.wait(timeout=60) == 0
        assert _SlowHook.answered.is_set()
        exit_code = stack.docker("inspect", "--format", "{{.State.ExitCode}}", worker)
        assert exit_code == "0", f"worker-low exited with {exit_code} (137: killed mid-task)"
        run = stack.await_run(body["task_id"], timeout=30.0)
        assert run["state"] == "succeeded", run
    finally:
        _SlowHook.release.set()
        server.shutdown()
        server.server_close()
