"""Thread-safe broker clients for a web process: confirmed publishers and queue readers.

A `ConfirmedPublisher` or a kombu connection is not thread-safe, so each is leased from a small
pool for one call at a time; a broken one is dropped and the next call makes a fresh one.
Timeouts are short (`API_BROKER_TIMEOUT`): a request answers 503 within 2 s rather than hang.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from amqp.exceptions import AMQPError
from kombu import Connection
from kombu.exceptions import KombuError

from scheduling.broker.nodes import BrokerNodes
from scheduling.broker.publisher import ConfirmedPublisher, OutgoingRun
from scheduling.broker.topology import QueueStatus, declarer, queue_status
from scheduling.config.settings import Settings
from scheduling.errors import BrokerUnavailable, PublishError

__all__ = ["API_BROKER_TIMEOUT", "BrokerReader", "PublisherPool"]

API_BROKER_TIMEOUT = 1.5
"""Seconds a request waits for the broker (connect, confirm): a 503 within 2 s beats a hang."""
POOL_SIZE = 8

T = TypeVar("T")


class _LeasePool(Generic[T]):
    """At most `size` clients, each used by one thread at a time; a broken one is dropped."""

    def __init__(self, factory: Callable[[], T], close: Callable[[T], None], size: int) -> None:
        self._factory = factory
        self._close = close
        self._idle: queue.LifoQueue[T] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: weakref.WeakSet[Any] = weakref.WeakSet()
        self._closed = False

    @contextmanager
    def lease(self, timeout: float) -> Iterator[T]:
        if not self._slots.acquire(timeout=timeout):
            raise TimeoutError(f"no free client within {timeout}s")
        try:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                client = self._factory()
            try:
                yield client
            except BaseException:
                self._close(client)
                raise
            if self._closed:
                self._close(client)
            else:
                self._idle.put(client)
        finally:
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._close(self._idle.get_nowait())
            except queue.Empty:
                return


class PublisherPool:
    """A thread-safe publisher: `ConfirmedPublisher` clients leased per call.

    A publish on a connection that went stale (broker restarted since the last request, or its
    node of a cluster died) is tried once more on a fresh connection (to the next node that
    answers) when time is left; the task id is the same, so a message the broker did receive the
    first time is the same run, not a second one. The clients share one `BrokerNodes`, so once
    one of them found a surviving node the others start there.
    """

    def __init__(
        self, settings: Settings, *, size: int = POOL_SIZE, sent_events: bool = False
    ) -> None:
        broker = settings.broker
        connect = min(broker.connect_timeout.total_seconds(), API_BROKER_TIMEOUT)
        confirm = min(broker.publish_timeout.total_seconds(), API_BROKER_TIMEOUT)
        declare = declarer(settings)
        origin = f"periodic-web-{os.getpid()}@{socket.gethostname()}"
        nodes = BrokerNodes(broker.url.get_secret_value())

        def factory() -> ConfirmedPublisher:
            return ConfirmedPublisher(
                broker.url.get_secret_value(),
                connect_timeout=connect,
                confirm_timeout=confirm,
                origin=origin,
                declare=declare,
                nodes=nodes,
                sent_events=sent_events,
            )

        self._timeout = confirm
        self._pool = _LeasePool(factory, ConfirmedPublisher.close, size)

    def publish(self, runs: Sequence[OutgoingRun]) -> None:
        started = time.monotonic()
        try:
            with self._pool.lease(self._timeout) as publisher:
                was_connected = publisher.connected
                try:
                    publisher.publish(runs)
                except PublishError:
                    if not was_connected or time.monotonic() - started > self._timeout / 3:
                        raise
                    publisher.publish(runs)
        except TimeoutError as error:
            raise PublishError(f"no publisher free: {error}") from error

    def close(self) -> None:
        self._pool.close()


class BrokerReader:
    """Read-only broker questions (queue depth and consumers) on pooled connections."""

    def __init__(self, settings: Settings, *, size: int = POOL_SIZE) -> None:
        timeout = min(settings.broker.connect_timeout.total_seconds(), API_BROKER_TIMEOUT)
        nodes = BrokerNodes(settings.broker.url.get_secret_value())

        def factory() -> Connection:
            return nodes.connect(connect_timeout=timeout, heartbeat=0)

        self._timeout = timeout
        self._pool = _LeasePool(factory, _release_connection, size)

    def queue_status(self, name: str) -> QueueStatus:
        """Raises `BrokerUnavailable` when no broker node can be reached.

        A pooled connection whose node died since its last use fails once; the question is then
        asked again on a fresh connection (another node), as long as time is left.
        """
        started = time.monotonic()
        try:
            return self._queue_status(name)
        except BrokerUnavailable:
            if time.monotonic() - started > self._timeout / 3:
                raise
            return self._queue_status(name)

    def _queue_status(self, name: str) -> QueueStatus:
        try:
            with self._pool.lease(self._timeout) as connection:
                return queue_status(connection, name)
        except (OSError, AMQPError, KombuError) as error:
            raise BrokerUnavailable(
                f"the broker did not answer: {type(error).__name__}: {error}"
            ) from error

    def close(self) -> None:
        self._pool.close()


def _release_connection(connection: Connection) -> None:
    with contextlib.suppress(Exception):  # a broken connection may fail to close again
        connection.collect()
