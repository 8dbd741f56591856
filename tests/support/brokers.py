"""Where integration tests get their RabbitMQ from (SPEC §10).

Order: ``PERIODIC_TEST_BROKER_URL`` if set → a testcontainers RabbitMQ when a Docker engine answers
→ a throwaway local ``rabbitmq-server`` node
(:class:`project.devtools.localbroker.LocalRabbitNode`) →
otherwise the tests fail (never skip) with instructions.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from project.devtools.localbroker import LocalRabbitNode, broker_answers, rabbitmq_server_available

__all__ = ["BROKER_URL_ENV", "RABBITMQ_IMAGE", "docker_answers", "provide_broker"]

BROKER_URL_ENV = "PERIODIC_TEST_BROKER_URL"
RABBITMQ_IMAGE = "rabbitmq:3.10"  # same major/minor as the Debian package used as fallback
_AMQP_PORT = 5672

NO_BROKER_MESSAGE = f"""\
No RabbitMQ for the integration tests. Provide one of:
  * {BROKER_URL_ENV}=amqp://USER:PASS@HOST:PORT/VHOST pointing at a broker you run, or
  * a running Docker engine (a testcontainers RabbitMQ is started), or
  * the Debian/Ubuntu package: apt-get install rabbitmq-server (a throwaway node is started under
    a temp dir; the system service may stay stopped)."""


def docker_answers(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` seconds; False on any error."""
    socket_path = Path("/var/run/docker.sock")
    if not os.environ.get("DOCKER_HOST") and not socket_path.exists():
        return False
    # docker-py leaks its socket when the engine does not answer; keep that ResourceWarning
    # from surfacing later as an "unraisable exception" error under filterwarnings=error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return _ping_docker(timeout)
        except Exception:
            return False
        finally:
            gc.collect()


def _ping_docker(timeout: float) -> bool:
    import docker  # type: ignore[import-untyped, unused-ignore]

    client = docker.from_env(timeout=max(1, round(timeout)))
    try:
        return bool(client.ping())
    finally:
        client.close()


@contextlib.contextmanager
def provide_broker(tmp_root: Path) -> Iterator[str]:
    """Yield an AMQP URL of a usable broker, cleaning up whatever was started for it."""
    url = os.environ.get(BROKER_URL_ENV, "").strip()
    if url:
        if not _wait_answers(url, timeout=10.0):
            pytest.fail(
                f"{BROKER_URL_ENV}={url} does not answer an AMQP handshake (is it running, are "
                "the credentials and vhost right?)",
                pytrace=False,
            )
        yield url
        return
    if docker_answers():
        with _rabbitmq_container() as url:
            yield url
        return
    if rabbitmq_server_available():
        with LocalRabbitNode(tmp_root / "rabbitmq") as node:
            yield node.url
        return
    pytest.fail(NO_BROKER_MESSAGE, pytrace=False)


@contextlib.contextmanager
def _rabbitmq_container() -> Iterator[str]:
    container = _make_container()
    container.start()
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(_AMQP_PORT)
        url = f"amqp://guest:guest@{host}:{port}//"
        if not _wait_answers(url, timeout=120.0):
            pytest.fail(f"the RabbitMQ container ({RABBITMQ_IMAGE}) never answered at {url}")
        yield url
    finally:
        container.stop()


def _make_container() -> Any:
    """``RabbitMqContainer`` when it imports, else a plain container we probe ourselves.

    testcontainers' RabbitMQ module lives at ``testcontainers.community.rabbitmq`` (the old
    ``testcontainers.rabbitmq`` only re-exports it with a DeprecationWarning) and imports ``pika``
    for its readiness probe, which is not one of our dependencies.
    """
    try:
        from testcontainers.community.rabbitmq import RabbitMqContainer
    except ImportError:
        from testcontainers.core.container import DockerContainer

        return DockerContainer(RABBITMQ_IMAGE).with_exposed_ports(_AMQP_PORT)
    return RabbitMqContainer(RABBITMQ_IMAGE, port=_AMQP_PORT, username="guest", password="guest")


def _wait_answers(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not broker_answers(url, timeout=2.0):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
