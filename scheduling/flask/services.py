"""The services a Flask app carries (settings, Celery, store, broker clients), set by `init_app`.

The store and the broker clients open lazily, on first use, so an app builds (and `/healthz`
answers) while the database or the broker is down, and `/readyz` can say which one is missing.
Run-now requests go through one `Batcher` per process (group commit, see
`scheduling.operations.batcher`), made in the process that uses it, so a gunicorn worker never
inherits a lock its master held at the fork.
They are shared by all server threads of a process: the store is thread-safe (a SQLAlchemy engine
with its pool); publishers and broker connections are not, so each is leased from a small pool
for one call at a time. Everything is closed by `Services.close` (registered with atexit).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from flask import Flask, current_app

from scheduling.broker.pools import BrokerReader, PublisherPool
from scheduling.config.settings import Settings
from scheduling.operations.batcher import Batcher
from scheduling.operations.entries import RoutedEntries, RunNowRequest, RunOutcome, start_runs
from scheduling.store import RunRecord, Store

__all__ = ["PERIODIC", "Services", "current_services"]

PERIODIC = "periodic"


@dataclass
class Services:
    settings: Settings
    celery: Celery
    url_prefix: str = ""
    source: str = "settings"
    """The settings file (or "settings" when built in code)."""
    """Where the extension is mounted ("" at the root, else e.g. "/periodic")."""
    routed: RoutedEntries = field(default_factory=RoutedEntries)
    _store: Store | None = field(default=None, init=False, repr=False)
    _publisher: PublisherPool | None = field(default=None, init=False, repr=False)
    _broker: BrokerReader | None = field(default=None, init=False, repr=False)
    _run_batcher: tuple[int, Batcher[RunNowRequest, RunRecord]] | None = field(
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
                sent_events = bool(self.celery.conf.task_send_sent_event)
                self._publisher = PublisherPool(self.settings, sent_events=sent_events)
            return self._publisher

    @property
    def broker(self) -> BrokerReader:
        with self._lock:
            if self._broker is None:
                self._broker = BrokerReader(self.settings)
            return self._broker

    def run_now(self, name: str, actor: str | None = None) -> RunRecord:
        """Start a run of `name` (see `operations.run_now`) in this process's next batch.

        Blocks until the batch is done (this thread may be the one that runs it). With an
        `actor`, the confirmed run is recorded in the entry's history by the batch itself.
        Raises the request's own error (`EntryNotFound`, `BrokerUnavailable`, `StoreError`),
        exactly as `operations.run_now` would.
        """
        return self.run_batcher.run(RunNowRequest(name, datetime.now(UTC), actor))

    @property
    def run_batcher(self) -> Batcher[RunNowRequest, RunRecord]:
        """This process's run-now batcher; a forked child makes its own."""
        with self._lock:
            current = self._run_batcher
            if current is None or current[0] != os.getpid():
                current = (os.getpid(), Batcher(self._start_runs, name="periodic-run-now"))
                self._run_batcher = current
            return current[1]

    def _start_runs(self, requests: Sequence[RunNowRequest]) -> list[RunOutcome]:
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


def current_services() -> Services:
    """The services of the current app (views only; library code takes them as arguments)."""
    services = current_app.extensions[PERIODIC]
    assert isinstance(services, Services)
    return services
