"""Which RabbitMQ node to talk to: one URL, or the nodes of a cluster tried in turn.

``[broker].url`` may list several nodes (kept as kombu's ``;``-joined form, which Celery workers
use for their own fail-over). Beat's and web's publishers and web's queue readers connect through
`BrokerNodes`: each node is tried once, starting with the one that answered last, without the
sleep kombu puts between attempts (a dead node on a live host refuses at once; a silent one costs
``connect_timeout``). When every node fails, the caller's own retry rule applies (beat backs
off, a request answers 503).

Errors name a node by its position and ``host:port``, never by its URL: URLs carry the password.
"""

from __future__ import annotations

import contextlib
from typing import Any

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import KombuError
from kombu.utils.url import maybe_sanitize_url, parse_url

from scheduling.config.settings import node_urls
from scheduling.errors import BrokerUnavailable

__all__ = ["BrokerNodes", "node_address", "sanitize_nodes"]


def node_address(url: str) -> str:
    """``host:port`` of a node URL (5672, or 5671 for amqps, when the URL names no port)."""
    parts = parse_url(url)
    default = 5671 if str(parts.get("transport", "")).endswith("s") else 5672
    return f"{parts.get('hostname') or 'localhost'}:{parts.get('port') or default}"


def sanitize_nodes(url: str) -> str:
    """The broker URL (every node of it) with passwords masked, fit for a log or a banner."""
    return "; ".join(str(maybe_sanitize_url(node)) for node in node_urls(url))


class BrokerNodes:
    """The nodes of ``[broker].url`` and which one answered last (shared by a pool's clients).

    Remembering the last good node only saves failed attempts: a plain int, so sharing it
    between threads needs no lock.
    """

    def __init__(self, url: str) -> None:
        self.urls = node_urls(url)
        if not self.urls:
            raise ValueError("no broker node URL given")
        self.current = 0

    def __len__(self) -> int:
        return len(self.urls)

    def describe(self, index: int) -> str:
        return f"node {index + 1} ({node_address(self.urls[index])})"

    def connect(self, **options: Any) -> Connection:
        """An open kombu connection to the first node that answers, from the last good one.

        Raises `BrokerUnavailable`, naming each node and its error, when none does.
        """
        failures: list[str] = []
        for offset in range(len(self.urls)):
            index = (self.current + offset) % len(self.urls)
            connection = Connection(self.urls[index], **options)
            try:
                connection.ensure_connection(max_retries=0)
            except (OSError, AMQPError, KombuError) as error:
                _discard(connection)
                failures.append(f"{self.describe(index)}: {type(error).__name__}: {error}")
                continue
            self.current = index
            return connection
        raise BrokerUnavailable("no broker node answers: " + "; ".join(failures))


def _discard(connection: Connection) -> None:
    with contextlib.suppress(Exception):  # a connection that never opened may fail to close
        connection.collect()
