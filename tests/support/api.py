"""Fixtures of the HTTP API tests: an app on a real store and a real broker, with tokens.

Each test gets queues of its own (unique names on the session broker), so messages counted in
one test cannot come from another; they are deleted after. The fixtures (`api_settings`,
`api_app`, `client`) live in tests/integration/conftest.py; this module holds the helpers.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Flask
from kombu import Connection

from scheduling.broker.topology import declare_topology, topology
from scheduling.config.settings import Settings
from scheduling.flask.services import PERIODIC, Services

__all__ = [
    "READ",
    "READ_SECRET",
    "WRITE",
    "WRITE_SECRET",
    "make_settings",
    "queue_names",
    "services",
    "temporary_queues",
]

READ_SECRET = "read-token-0123456789abcdef"
WRITE_SECRET = "write-token-0123456789abcdef"
READ = {"Authorization": f"Bearer {READ_SECRET}"}
WRITE = {"Authorization": f"Bearer {WRITE_SECRET}"}
HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"


def make_settings(store_url: str, broker_url: str, **overrides: Any) -> Settings:
    """Settings for one test: its own three queues, database scheduler, a read and a write token."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    document: dict[str, Any] = {
        "app": {"timezone": "Europe/Berlin", "database_url": store_url},
        "broker": {"url": broker_url},
        "queues": {
            f"{prefix}-high": {"priority": 9},
            f"{prefix}-default": {"priority": 5, "default": True},
            f"{prefix}-low": {"priority": 1},
        },
        "beat": {"scheduler": "database"},
        "api": {
            "tokens": [
                {"name": "reader", "secret": READ_SECRET, "scope": "read"},
                {"name": "writer", "secret": WRITE_SECRET, "scope": "write"},
            ]
        },
    }
    document.update(overrides)
    return Settings(**document)


def queue_names(settings: Settings) -> dict[str, str]:
    """high/default/low -> this test's queue name."""
    return {name.rsplit("-", 1)[1]: name for name in settings.queues}


@contextlib.contextmanager
def temporary_queues(settings: Settings) -> Iterator[None]:
    """Declare the settings' queues on the broker; delete them (not the shared DLQ) after."""
    url = settings.broker.url.get_secret_value()
    with Connection(url) as connection:
        declare_topology(connection, settings)
    try:
        yield
    finally:
        with Connection(url) as connection:
            channel = connection.channel()
            for queue in topology(settings):
                if queue.name in settings.queues:
                    channel.queue_delete(queue=queue.name)
            channel.close()


def services(app: Flask) -> Services:
    found = app.extensions[PERIODIC]
    assert isinstance(found, Services)
    return found
