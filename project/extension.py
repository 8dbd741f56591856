"""The services a Flask app carries (settings, Celery, store, broker clients), set by `init_app`.

The store and the broker clients open lazily, on first use, so an app builds (and `/healthz`
answers) while the database or the broker is down, and `/readyz` can say which one is missing.
Run-now requests go through one `Batcher` per process (group commit, see `project.run_batcher`),
made in the process that uses it, so a gunicorn worker never inherits its master's thread.
They are shared by all server threads of a process: the store is thread-safe (a SQLAlchemy engine
with its pool); publishers and broker connections are not, so each is leased from a small pool
for one call at a time. Everything is closed by `Periodic.close` (registered with atexit).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from amqp.exceptions import AMQPError
from celery import Celery
from flask import Flask, current_app
from kombu import Connection
from kombu.exceptions import KombuError
from kombu.utils.url import parse_url

from project.operations import BrokerUnavailable, RoutedEntries, RunOutcome, start_runs
from project.run_batcher import Batcher
from scheduling.broker import QueueStatus, queue_status
from scheduling.errors import PublishError
from scheduling.publisher import ConfirmedPublisher, OutgoingRun
from scheduling.settings import Settings
from scheduling.store import RunRecord, Store

__all__ = ["PERIODIC", "BrokerReader", "Periodic", "PublisherPool", "periodic"]

PERIODIC = "periodic"
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


def broker_address(url: str) -> tuple[str, int]:
    """Host and port of an AMQP URL (5672, or 5671 for amqps, when the URL names none)."""
    parts = parse_url(url)
    default = 5671 if str(parts.get("transport", "")).endswith("s") else 5672
    return str(parts.get("hostname") or "localhost"), int(parts.get("port") or default)


class PublisherPool:
    """A thread-safe publisher: `ConfirmedPublisher` clients leased per call.

    A publish on a connection that went stale (broker restarted since the last request) is tried
    once more on a fresh connection when time is left; the task id is the same, so a message the
    broker did receive the first time is the same run, not a second one.
    """

    def __init__(self, settings: Settings, *, size: int = POOL_SIZE) -> None:
        broker = settings.broker
        connect = min(broker.connect_timeout.total_seconds(), API_BROKER_TIMEOUT)
        confirm = min(broker.publish_timeout.total_seconds(), API_BROKER_TIMEOUT)
        origin = f"periodic-web-{os.getpid()}@{socket.gethostname()}"

        def factory() -> ConfirmedPublisher:
            return ConfirmedPublisher(
                broker.url.get_secret_value(),
                connect_timeout=connect,
                confirm_timeout=confirm,
                origin=origin,
            )

        self._timeout = confirm
        self._address = broker_address(broker.url.get_secret_value())
        self._pool = _LeasePool(factory, ConfirmedPublisher.close, size)

    def publish(self, runs: Sequence[OutgoingRun]) -> None:
        started = time.monotonic()
        try:
            with self._pool.lease(self._timeout) as publisher:
                was_connected = publisher.connected
                try:
                    self._publish(publisher, runs)
                except PublishError:
                    if not was_connected or time.monotonic() - started > self._timeout / 3:
                        raise
                    self._publish(publisher, runs)
        except TimeoutError as error:
            raise PublishError(f"no publisher free: {error}") from error

    def _publish(self, publisher: ConfirmedPublisher, runs: Sequence[OutgoingRun]) -> None:
        if not publisher.connected:
            # kombu's connect() retries once after 2 s when refused; a TCP probe answers a
            # stopped broker in milliseconds, which keeps a request's 503 within its bound.
            try:
                socket.create_connection(self._address, timeout=self._timeout).close()
            except OSError as error:
                raise PublishError(f"the broker does not accept connections: {error}") from error
        publisher.publish(runs)

    def close(self) -> None:
        self._pool.close()


class BrokerReader:
    """Read-only broker questions (queue depth and consumers) on pooled connections."""

    def __init__(self, settings: Settings, *, size: int = POOL_SIZE) -> None:
        url = settings.broker.url.get_secret_value()
        timeout = min(settings.broker.connect_timeout.total_seconds(), API_BROKER_TIMEOUT)

        def factory() -> Connection:
            return Connection(url, connect_timeout=timeout, heartbeat=0)

        self._timeout = timeout
        self._pool = _LeasePool(factory, _release_connection, size)

    def queue_status(self, name: str) -> QueueStatus:
        """Raises `BrokerUnavailable` when the broker cannot be reached."""
        try:
            with self._pool.lease(self._timeout) as connection:
                if not connection.connected:
                    connection.ensure_connection(max_retries=0, timeout=int(self._timeout) or 1)
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


@dataclass
class Periodic:
    settings: Settings
    celery: Celery
    routed: RoutedEntries = field(default_factory=RoutedEntries)
    _store: Store | None = field(default=None, init=False, repr=False)
    _publisher: PublisherPool | None = field(default=None, init=False, repr=False)
    _broker: BrokerReader | None = field(default=None, init=False, repr=False)
    _run_batcher: tuple[int, Batcher[tuple[str, datetime], RunRecord]] | None = field(
        default=None, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def init_app(self, app: Flask) -> None:
        app.extensions[PERIODIC] = self
        atexit.register(self.close)

    @property
    def store(self) -> Store:
        """The schedule store, opened (and migrated) on first use; raises StoreError if down."""
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    self._store = Store.open(self.settings.app.database_url.get_secret_value())
                store = self._store
        return store

    @property
    def publisher(self) -> PublisherPool:
        with self._lock:
            if self._publisher is None:
                self._publisher = PublisherPool(self.settings)
            return self._publisher

    @property
    def broker(self) -> BrokerReader:
        with self._lock:
            if self._broker is None:
                self._broker = BrokerReader(self.settings)
            return self._broker

    def run_now(self, name: str) -> Future[RunRecord]:
        """Start a run of `name` (see `operations.run_now`) in this process's next batch.

        The future fails with the request's own error (`EntryNotFound`, `BrokerUnavailable`,
        `StoreError`), exactly as `operations.run_now` would raise it.
        """
        return self.run_batcher.submit((name, datetime.now(UTC)))

    @property
    def run_batcher(self) -> Batcher[tuple[str, datetime], RunRecord]:
        """This process's run-now batcher; a forked child makes its own."""
        with self._lock:
            current = self._run_batcher
            if current is None or current[0] != os.getpid():
                current = (os.getpid(), Batcher(self._start_runs, name="periodic-run-now"))
                self._run_batcher = current
            return current[1]

    def _start_runs(self, requests: Sequence[tuple[str, datetime]]) -> list[RunOutcome]:
        return start_runs(self.store, self.publisher, self.settings, requests)

    @property
    def registry(self) -> Any:
        """The task registry entries are validated against."""
        return self.celery.tasks

    def close(self) -> None:
        with self._lock:
            batcher, self._run_batcher = self._run_batcher, None
        if batcher is not None and batcher[0] == os.getpid():
            batcher[1].close()  # first: its last batch still needs the store and the publisher
        with self._lock:
            store, self._store = self._store, None
            publisher, self._publisher = self._publisher, None
            broker, self._broker = self._broker, None
        if publisher is not None:
            publisher.close()
        if broker is not None:
            broker.close()
        if store is not None:
            store.close()


def periodic() -> Periodic:
    """The services of the current app (views only; library code takes them as arguments)."""
    services = current_app.extensions[PERIODIC]
    assert isinstance(services, Periodic)
    return services
