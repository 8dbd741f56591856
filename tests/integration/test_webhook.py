"""`call_webhook` against a real HTTP server on loopback: success, retries, refusals."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scheduling.errors import WebhookFailed, WebhookRefused, WebhookUnavailable
from scheduling.store import RunState
from scheduling.tasks.webhook_client import call
from tests.support.certificates import self_signed
from tests.support.worker_stage import WorkerStage, worker_stage

pytestmark = pytest.mark.integration


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    release: threading.Event = field(default_factory=threading.Event)


class HookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script) -> None:
        self.script = script
        super().__init__(("127.0.0.1", 0), HookHandler)

    def get_request(self) -> Any:
        self.script.connections += 1
        return super().get_request()


class HookHandler(BaseHTTPRequestHandler):
    server: HookServer

    def _answer(self) -> None:
        script = self.server.script
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        script.received.append(Received(self.command, self.path, dict(self.headers), body))
        if script.delay:
            script.release.wait(script.delay)
        status = script.statuses.pop(0) if script.statuses else 200
        payload = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[HookServer, Script]]:
    script = Script()
    server = HookServer(script)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, script
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def port_of(server: HookServer) -> int:
    return int(server.server_address[1])


def test_a_listed_host_gets_the_call_with_json_and_headers(
    hook: tuple[HookServer, Script],
) -> None:
    server, script = hook
    url = f"http://127.0.0.1:{port_of(server)}/hooks/deploy?x=1"
    response = call(
        url, allowed_hosts=["127.0.0.1"], json={"entry": "nightly"}, headers={"X-Token": "t0k"}
    )
    assert response.status == 200
    (request,) = script.received
    assert (request.method, request.path) == ("POST", "/hooks/deploy?x=1")
    assert json.loads(request.body) == {"entry": "nightly"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Token"] == "t0k"


def test_5xx_is_unavailable_and_an_unexpected_4xx_is_a_failure(
    hook: tuple[HookServer, Script],
) -> None:
    server, script = hook
    url = f"http://127.0.0.1:{port_of(server)}/"
    script.statuses = [503, 404, 404]
    with pytest.raises(WebhookUnavailable, match="503"):
        call(url, allowed_hosts=["127.0.0.1"])
    with pytest.raises(WebhookFailed, match="404"):
        call(url, allowed_hosts=["127.0.0.1"])
    assert call(url, allowed_hosts=["127.0.0.1"], expect_status=[404]).status == 404


def test_a_slow_server_times_out_as_unavailable(hook: tuple[HookServer, Script]) -> None:
    server, script = hook
    script.delay = 5.0
    with pytest.raises(WebhookUnavailable, match="timed out"):
        call(f"http://127.0.0.1:{port_of(server)}/", allowed_hosts=["127.0.0.1"], timeout=0.3)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("localhost", ["127.0.0.1"]), ("localhost", ["*"]), ("127.0.0.1", ["*"])],
)
def test_refused_hosts_are_never_connected_to(
    hook: tuple[HookServer, Script], host: str, allowed: list[str]
) -> None:
    server, script = hook
    with pytest.raises(WebhookRefused):
        call(f"http://{host}:{port_of(server)}/", allowed_hosts=allowed)
    assert script.connections == 0
    assert script.received == []


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    hook: tuple[HookServer, Script],
) -> None:
    server, script = hook
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    # "hooks.internal" exists in no DNS: only the checked address can have been used.
    port = port_of(server)
    response = call(
        f"http://hooks.internal:{port}/x", allowed_hosts=["hooks.internal"], resolver=resolver
    )
    assert response.status == 200
    assert response.address == "127.0.0.1"
    assert lookups == ["hooks.internal"]
    assert script.received[0].headers["Host"] == f"hooks.internal:{port}"


@pytest.fixture
def tls_hook(tmp_path: Path) -> Iterator[tuple[HookServer, Script, ssl.SSLContext]]:
    certificate = self_signed(tmp_path)
    script = Script()
    server = HookServer(script)
    server.socket = certificate.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, script, certificate.client_context()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_https_goes_to_the_checked_address_and_verifies_the_name(
    tls_hook: tuple[HookServer, Script, ssl.SSLContext],
) -> None:
    server, script, context = tls_hook
    port = port_of(server)

    def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    response = call(
        f"https://hooks.internal:{port}/tls",
        allowed_hosts=["hooks.internal", "other.internal"],
        resolver=resolver,
        ssl_context=context,
    )
    assert response.status == 200
    assert script.received[0].path == "/tls"
    with pytest.raises(WebhookFailed, match="TLS"):
        call(
            f"https://other.internal:{port}/tls",
            allowed_hosts=["other.internal"],
            resolver=resolver,
            ssl_context=context,
        )
    assert len(script.received) == 1


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[WorkerStage]:
    directory = tmp_path_factory.mktemp("webhooks")
    settings = '[webhooks]\nallowed_hosts = ["127.0.0.1"]\n'
    with worker_stage(directory, broker_url, roles=("default",), extra_settings=settings) as s:
        s.start_worker("default", "webhook-worker")
        yield s


def test_the_task_retries_a_503_and_then_succeeds(
    stage: WorkerStage, hook: tuple[HookServer, Script]
) -> None:
    server, script = hook
    script.statuses = [503]
    task_id = stage.send(
        "scheduling.tasks.webhooks.call_webhook",
        "default",
        kwargs={"url": f"http://127.0.0.1:{port_of(server)}/ping", "json": {"n": 1}},
    )
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED, RunState.FAILED})
    assert run.state is RunState.SUCCEEDED
    assert run.retries == 1
    assert len(script.received) == 2


def test_the_task_fails_without_retry_for_a_host_that_is_not_allowed(
    stage: WorkerStage, hook: tuple[HookServer, Script]
) -> None:
    server, script = hook
    task_id = stage.send(
        "scheduling.tasks.webhooks.call_webhook",
        "default",
        kwargs={"url": f"http://localhost:{port_of(server)}/ping"},
    )
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED, RunState.FAILED})
    assert run.state is RunState.FAILED
    assert run.error_type == "WebhookRefused"
    assert run.retries == 0
    assert script.connections == 0
