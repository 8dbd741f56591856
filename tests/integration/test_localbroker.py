"""The test brokers themselves: the session broker works, a dedicated node stops/restarts/crashes
cleanly, keeps durable data, and leaves no process behind."""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from amqp.exceptions import NotFound
from kombu import Connection, Exchange, Message, Queue

from project.devtools import localbroker
from project.devtools.localbroker import LocalRabbitNode, broker_answers
from project.errors import BrokerNodeError, ProjectError

pytestmark = pytest.mark.integration

CONFIRMS = {"confirm_publish": True}


def unique(kind: str) -> str:
    return f"periodic-test.{kind}.{secrets.token_hex(4)}"


def process_identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time) of a live process, so a reused PID is not mistaken for ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return pid, fields[19]  # field 22 of proc(5): starttime


def port_refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except OSError:
        return True


def publish_persistent(url: str, queue: Queue, body: dict[str, Any]) -> None:
    """Publish with publisher confirms: returns only once the broker has the message on disk."""
    with Connection(url, transport_options=CONFIRMS) as conn:
        conn.Producer().publish(
            body,
            exchange="",
            routing_key=queue.name,
            declare=[queue],
            serializer="json",
            delivery_mode=2,
            retry=False,
        )


def get_one(url: str, queue: Queue, timeout: float = 10.0) -> Any:
    with Connection(url) as conn:
        bound = queue(conn.default_channel)
        deadline = time.monotonic() + timeout
        while (message := bound.get(no_ack=False, accept=["json"])) is None:
            if time.monotonic() >= deadline:
                pytest.fail(f"no message in {queue.name} after {timeout} s")
            time.sleep(0.05)
        message.ack()
        return message.decode()


def durable_queue() -> Queue:
    return Queue(unique("durable"), durable=True, auto_delete=False)


def test_round_trip_with_publisher_confirms(broker_url: str) -> None:
    name = unique("roundtrip")
    exchange = Exchange(name, type="direct", durable=False, auto_delete=True)
    queue = Queue(name, exchange, routing_key=name, durable=False, auto_delete=True)
    received: list[Any] = []

    def on_message(body: Any, message: Message) -> None:
        received.append(body)
        message.ack()

    with Connection(broker_url, transport_options=CONFIRMS) as conn:
        producer = conn.Producer()
        producer.publish(
            {"hello": "rabbit"},
            exchange=exchange,
            routing_key=name,
            declare=[queue],
            serializer="json",
            retry=False,
        )
        channel: Any = producer.channel
        assert channel._confirm_selected, "publisher confirms were not enabled"
        with conn.Consumer(queue, callbacks=[on_message], accept=["json"]):
            deadline = time.monotonic() + 10.0
            while not received and time.monotonic() < deadline:
                conn.drain_events(timeout=max(0.1, deadline - time.monotonic()))
    assert received == [{"hello": "rabbit"}]


def test_confirmed_publish_to_missing_exchange_fails_synchronously(broker_url: str) -> None:
    with Connection(broker_url, transport_options=CONFIRMS) as conn, pytest.raises(NotFound):
        conn.Producer().publish(
            b"x", exchange=unique("missing"), routing_key="nowhere", retry=False
        )


@pytest.mark.slow
def test_stop_then_start_keeps_port_and_durable_messages(rabbit_node: LocalRabbitNode) -> None:
    url, port = rabbit_node.url, rabbit_node.port
    assert url == f"amqp://guest:guest@127.0.0.1:{port}//"
    assert port != 5672, "a dedicated node must never be the shared broker"
    queue = durable_queue()
    publish_persistent(url, queue, {"survives": "restart"})
    started = {ident for pid in rabbit_node.pids() if (ident := process_identity(pid))}
    assert len(started) >= 3, f"expected epmd, the script and beam.smp, got {started}"

    rabbit_node.stop()
    rabbit_node.stop()  # harmless

    assert rabbit_node.pids() == set()
    assert not rabbit_node.running
    assert {ident for ident in started if process_identity(ident[0]) == ident} == set()
    begun = time.monotonic()
    assert not broker_answers(url, timeout=2.0)
    assert port_refuses(port)
    assert time.monotonic() - begun < 1.0, "a stopped broker must be refused, not time out"

    rabbit_node.start()

    assert rabbit_node.url == url
    assert get_one(url, queue) == {"survives": "restart"}


@pytest.mark.slow
def test_kill_leaves_nothing_and_node_recovers(rabbit_node: LocalRabbitNode) -> None:
    queue = durable_queue()
    publish_persistent(rabbit_node.url, queue, {"survives": "SIGKILL"})
    # The confirm covers the message; the queue's own record lives in Mnesia, whose log is
    # written asynchronously, so a SIGKILL right after the declare could lose the queue (seen
    # under load). Sync that log first: the test is about our kill, not Mnesia's write-behind.
    synced = rabbit_node.rabbitmqctl("eval", "mnesia:sync_log().")
    assert synced.returncode == 0, synced.stderr
    started = {ident for pid in rabbit_node.pids() if (ident := process_identity(pid))}

    rabbit_node.kill()

    assert rabbit_node.pids() == set()
    assert {ident for ident in started if process_identity(ident[0]) == ident} == set()
    assert port_refuses(rabbit_node.port)

    rabbit_node.start()
    pids = rabbit_node.pids()
    rabbit_node.start()  # already running: a no-op

    assert rabbit_node.pids() == pids
    assert get_one(rabbit_node.url, queue) == {"survives": "SIGKILL"}


def test_busy_port_is_reported_without_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        node = LocalRabbitNode(tmp_path, port=busy.getsockname()[1])
        with pytest.raises(BrokerNodeError, match="already in use"):
            node.start()
    assert node.pids() == set()


def test_failed_boot_raises_with_log_tail_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for script in ("rabbitmq-server", "rabbitmqctl"):
        path = fake_bin / script
        path.write_text("#!/bin/sh\necho 'BOOT FAILED: pretend mnesia is corrupt'\nexit 1\n")
        path.chmod(0o755)
    monkeypatch.setattr(localbroker, "RABBITMQ_BIN_DIR", fake_bin)
    node = LocalRabbitNode(tmp_path / "node")

    with pytest.raises(ProjectError, match="BOOT FAILED: pretend mnesia is corrupt") as failure:
        node.start(timeout=20.0)

    assert isinstance(failure.value, BrokerNodeError)
    assert "exited during startup" in str(failure.value)
    assert node.pids() == set()
    assert not node.running
