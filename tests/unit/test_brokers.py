"""Broker selection (SPEC §10) and the broker probes, without any broker."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from project.devtools.localbroker import LocalRabbitNode, broker_answers
from tests.support import brokers

ENV_URL = "amqp://user:secret@rabbit.example:5672/periodic"


@pytest.fixture
def no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(brokers.BROKER_URL_ENV, raising=False)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forbid(name: str) -> Any:
    def called(*args: object, **kwargs: object) -> Any:
        pytest.fail(f"{name} must not be used here")

    return called


def test_env_url_wins_and_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(brokers.BROKER_URL_ENV, ENV_URL)
    monkeypatch.setattr(brokers, "_wait_answers", lambda url, timeout: url == ENV_URL)
    monkeypatch.setattr(brokers, "docker_answers", forbid("docker"))
    monkeypatch.setattr(brokers, "LocalRabbitNode", forbid("LocalRabbitNode"))

    with brokers.provide_broker(Path("/nonexistent")) as url:
        assert url == ENV_URL


def test_env_url_that_does_not_answer_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(brokers.BROKER_URL_ENV, ENV_URL)
    monkeypatch.setattr(brokers, "_wait_answers", lambda url, timeout: False)

    with (
        pytest.raises(pytest.fail.Exception, match="does not answer"),
        brokers.provide_broker(Path("/nonexistent")),
    ):
        pass


@pytest.fixture
def no_image_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(brokers.RABBITMQ_IMAGE_ENV, raising=False)


@pytest.mark.usefixtures("no_env_url", "no_image_env")
def test_docker_is_preferred_to_a_local_node(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    made: list[tuple[str, dict[str, str]]] = []

    class FakeContainer:
        def __init__(self, image: str, environment: dict[str, str]) -> None:
            made.append((image, environment))

        def start(self) -> None:
            events.append("start")

        def stop(self) -> None:
            events.append("stop")

    monkeypatch.setattr(brokers, "docker_answers", lambda: True)
    monkeypatch.setattr(brokers, "free_ports", lambda count, exclude: [32771, 32772, 32773])
    monkeypatch.setattr(brokers, "_make_container", FakeContainer)
    monkeypatch.setattr(brokers, "_wait_answers", lambda url, timeout: True)
    monkeypatch.setattr(brokers, "LocalRabbitNode", forbid("LocalRabbitNode"))
    monkeypatch.setattr(brokers, "reap_orphans", lambda host: events.append("reap") or [])

    with brokers.provide_broker(Path("/nonexistent")) as url:
        assert url == "amqp://guest:guest@127.0.0.1:32771//"
        assert events == ["reap", "start"]
    assert events == ["reap", "start", "stop"]
    [(image, environment)] = made
    assert image == brokers.DEFAULT_RABBITMQ_IMAGE
    assert environment["RABBITMQ_NODE_PORT"] == "32771"
    assert environment["RABBITMQ_DIST_PORT"] == "32772"
    assert environment["ERL_EPMD_PORT"] == "32773"


def test_container_keeps_off_the_machines_own_broker() -> None:
    """On the host network the node must not use the default name, dist port or epmd."""
    first = brokers.container_environment(40001, 40002, 40003)
    second = brokers.container_environment(40001, 40002, 40003)
    assert first["RABBITMQ_NODENAME"] != second["RABBITMQ_NODENAME"]
    assert not first["RABBITMQ_NODENAME"].startswith("rabbit@")
    assert first["ERL_EPMD_PORT"] == "40003"
    assert first["ERL_EPMD_ADDRESS"] == first["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.0.1"


@pytest.mark.usefixtures("no_env_url")
def test_image_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(brokers.RABBITMQ_IMAGE_ENV, "periodic/rabbitmq:bookworm")
    assert brokers.rabbitmq_image() == "periodic/rabbitmq:bookworm"


@pytest.mark.usefixtures("no_env_url")
def test_asking_for_an_image_without_an_engine_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The explicit container request must not hide behind the local-node fallback."""
    monkeypatch.setenv(brokers.RABBITMQ_IMAGE_ENV, "periodic/rabbitmq:bookworm")
    monkeypatch.setattr(brokers, "docker_answers", lambda: False)
    monkeypatch.setattr(brokers, "LocalRabbitNode", forbid("LocalRabbitNode"))

    with (
        pytest.raises(pytest.fail.Exception, match="no Docker engine answers"),
        brokers.provide_broker(Path("/nonexistent")),
    ):
        pass


@pytest.mark.usefixtures("no_env_url", "no_image_env")
def test_local_node_without_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nodes: list[Path] = []

    @contextlib.contextmanager
    def fake_node(base_dir: Path) -> Iterator[Any]:
        nodes.append(base_dir)
        yield type("Node", (), {"url": "amqp://guest:guest@127.0.0.1:1234//"})()

    monkeypatch.setattr(brokers, "docker_answers", lambda: False)
    monkeypatch.setattr(brokers, "rabbitmq_server_available", lambda: True)
    monkeypatch.setattr(brokers, "LocalRabbitNode", fake_node)

    with brokers.provide_broker(tmp_path) as url:
        assert url == "amqp://guest:guest@127.0.0.1:1234//"
    assert nodes == [tmp_path / "rabbitmq"]


@pytest.mark.usefixtures("no_env_url", "no_image_env")
def test_no_broker_at_all_fails_with_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(brokers, "docker_answers", lambda: False)
    monkeypatch.setattr(brokers, "rabbitmq_server_available", lambda: False)

    with (
        pytest.raises(pytest.fail.Exception) as failure,
        brokers.provide_broker(Path("/nonexistent")),
    ):
        pass
    message = str(failure.value)
    assert "apt-get install rabbitmq-server" in message
    assert brokers.BROKER_URL_ENV in message


def test_docker_answers_false_quickly_when_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{closed_port()}")
    begun = time.monotonic()
    assert brokers.docker_answers(timeout=1.0) is False
    assert time.monotonic() - begun < 5.0


def test_broker_answers_false_quickly_on_a_closed_port() -> None:
    begun = time.monotonic()
    assert broker_answers(f"amqp://guest:guest@127.0.0.1:{closed_port()}//", timeout=1.0) is False
    assert time.monotonic() - begun < 1.0


def test_broker_answers_false_when_no_node_of_a_list_answers() -> None:
    nodes = ";".join(f"amqp://guest:guest@127.0.0.1:{closed_port()}//" for _ in range(3))
    assert broker_answers(nodes, timeout=1.0) is False


def test_broker_answers_only_speaks_amqp() -> None:
    with pytest.raises(ValueError, match="redis"):
        broker_answers("redis://127.0.0.1:6379/0")


def test_node_url_and_fixed_port_need_no_process(tmp_path: Path) -> None:
    node = LocalRabbitNode(tmp_path, port=45999)
    assert node.url == "amqp://guest:guest@127.0.0.1:45999//"
    assert node.node_name.startswith("periodic-test-")
    assert node.node_name.endswith("@localhost")
    assert not node.running
    assert node.pids() == set()
    node.stop()  # never started: harmless


def test_each_node_gets_its_own_name_and_ports(tmp_path: Path) -> None:
    first, second = LocalRabbitNode(tmp_path / "a"), LocalRabbitNode(tmp_path / "b")
    assert first.node_name != second.node_name
    port = first.port
    assert port != 5672
    assert first.port == port  # allocated once, then stable
    assert first.url == f"amqp://guest:guest@127.0.0.1:{port}//"
