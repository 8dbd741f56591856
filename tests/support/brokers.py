"""Where integration tests get their RabbitMQ from (SPEC §10).

Order: ``PERIODIC_TEST_BROKER_URL`` if set → a testcontainers RabbitMQ when a Docker engine answers
→ a throwaway local ``rabbitmq-server`` node
(:class:`project.devtools.localbroker.LocalRabbitNode`) →
otherwise the tests fail (never skip) with instructions.

The container runs ``PERIODIC_TEST_RABBITMQ_IMAGE`` (default ``rabbitmq:3.10``; ``nox -s images``
builds ``periodic/rabbitmq:bookworm`` where no registry is reachable) with host networking: no
port mapping or bridge network is needed, so it works on an engine started with
``--bridge=none``.  On the host network the node needs its own free loopback ports for AMQP,
Erlang distribution and epmd, and its own node name, or it would meet the machine's RabbitMQ in
the shared epmd on 4369; RabbitMQ reads all of them from the environment, in both the official
image and ours.  Setting ``PERIODIC_TEST_RABBITMQ_IMAGE`` asks for a container: if no engine answers
then, the tests fail instead of quietly falling back to a local node.
"""

from __future__ import annotations

import contextlib
import gc
import os
import secrets
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from project.devtools.localbroker import (
    LocalRabbitNode,
    broker_answers,
    free_ports,
    rabbitmq_server_available,
)
from tests.support.reaper import owner_labels, reap_orphans

__all__ = [
    "BROKER_URL_ENV",
    "DEFAULT_RABBITMQ_IMAGE",
    "RABBITMQ_IMAGE_ENV",
    "container_environment",
    "docker_answers",
    "provide_broker",
    "rabbitmq_image",
]

BROKER_URL_ENV = "PERIODIC_TEST_BROKER_URL"
RABBITMQ_IMAGE_ENV = "PERIODIC_TEST_RABBITMQ_IMAGE"
DEFAULT_RABBITMQ_IMAGE = "rabbitmq:3.10"  # same major/minor as the Debian package used as fallback

NO_BROKER_MESSAGE = f"""\
No RabbitMQ for the integration tests. Provide one of:
  * {BROKER_URL_ENV}=amqp://USER:PASS@HOST:PORT/VHOST pointing at a broker you run, or
  * a running Docker engine (a testcontainers RabbitMQ is started; `nox -s images` starts one and
    builds the image where no registry is reachable), or
  * the Debian/Ubuntu package: apt-get install rabbitmq-server (a throwaway node is started under
    a temp dir; the system service may stay stopped)."""


def rabbitmq_image() -> str:
    """The broker image for the container path (``PERIODIC_TEST_RABBITMQ_IMAGE``)."""
    return os.environ.get(RABBITMQ_IMAGE_ENV, "").strip() or DEFAULT_RABBITMQ_IMAGE


def container_environment(amqp_port: int, dist_port: int, epmd_port: int) -> dict[str, str]:
    """What a RabbitMQ container on the host network needs to keep to its own loopback ports."""
    return {
        "RABBITMQ_NODENAME": f"periodic-tc-{secrets.token_hex(4)}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_MANAGEMENT_PORT": "none",  # ours: no management plugin, a faster boot
        "RABBITMQ_DEFAULT_USER": "guest",
        "RABBITMQ_DEFAULT_PASS": "guest",
    }


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
        with _rabbitmq_container(rabbitmq_image()) as url:
            yield url
        return
    if os.environ.get(RABBITMQ_IMAGE_ENV, "").strip():
        pytest.fail(
            f"{RABBITMQ_IMAGE_ENV}={rabbitmq_image()} asks for a container broker, but no Docker "
            f"engine answers at DOCKER_HOST={os.environ.get('DOCKER_HOST', '(unset)')} "
            "(`nox -s images` starts one)",
            pytrace=False,
        )
    if rabbitmq_server_available():
        with LocalRabbitNode(tmp_root / "rabbitmq") as node:
            yield node.url
        return
    pytest.fail(NO_BROKER_MESSAGE, pytrace=False)


@contextlib.contextmanager
def _rabbitmq_container(image: str) -> Iterator[str]:
    reap_orphans(os.environ.get("DOCKER_HOST", "").strip() or "unix:///var/run/docker.sock")
    amqp_port, dist_port, epmd_port = free_ports(3, set())
    container = _make_container(image, container_environment(amqp_port, dist_port, epmd_port))
    container.start()
    try:
        url = f"amqp://guest:guest@127.0.0.1:{amqp_port}//"
        if not _wait_answers(url, timeout=120.0):
            pytest.fail(
                f"the RabbitMQ container ({image}) never answered at {url}; its last lines:\n"
                + _container_log(container),
                pytrace=False,
            )
        yield url
    finally:
        container.stop()


def _make_container(image: str, environment: dict[str, str]) -> Any:
    """A testcontainers container on the host network; readiness is probed by the caller.

    Not ``RabbitMqContainer``: its readiness probe connects through a mapped port, and host
    networking maps none.
    """
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_kwargs(network_mode="host", labels=owner_labels())
    for key, value in environment.items():
        container.with_env(key, value)
    return container


def _container_log(container: Any) -> str:
    try:
        return bytes(container.get_wrapped_container().logs(tail=40)).decode(errors="replace")
    except Exception as error:  # the log is a courtesy in an error message
        return f"(no log: {error})"


def _wait_answers(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not broker_answers(url, timeout=2.0):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
