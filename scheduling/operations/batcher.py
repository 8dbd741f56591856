"""Group commit for run-now: concurrent requests of one process share their store and broker trips.

Each run-now is an outbox of three steps (claim a ledger row, publish with confirms, mark it
dispatched), and on SQLite every write transaction is serialised across all processes. One
transaction and one confirm round trip per request caps a server at a few hundred runs a
second. A `Batcher` owns one thread: requests queue up while it works, and each time it comes
round it takes everything waiting (up to `max_batch`, lingering up to `linger` seconds for
more) and hands the lot to one `execute` call, which claims, publishes and marks them together
(`scheduling.operations.entries.start_runs`). Under load batches grow by themselves; an
idle server pays no linger beyond the first request's.

Every request gets its own outcome (a run, or the error for that request alone); when
`execute` itself fails, every request of the batch fails with that same error. Callers wait on
a `concurrent.futures.Future`: async views with ``await asyncio.wrap_future(...)`` (no pool
hop), sync code with ``.result()``.

The thread starts lazily with the first request, so a batcher made before a fork is never
shared by two processes: `scheduling.flask.services.Periodic` makes one per process id.
`close` lets the thread finish what was submitted, then stops it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from scheduling.errors import BatcherClosed

__all__ = ["Batcher", "BatcherClosed"]

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Result = TypeVar("Result")

DEFAULT_MAX_BATCH = 256
DEFAULT_LINGER = 0.001
"""Seconds a batch waits for company after its first request (the latency a lone request pays)."""


class _Stop:
    """Queued by `close` after the last request: the thread ends when it gets here."""


_STOP = _Stop()


class Batcher(Generic[Request, Result]):
    """Runs `execute` on batches of submitted requests in one background thread.

    `execute(requests)` returns one outcome per request, in order: a result, or an exception
    to raise for that request. An exception raised by `execute` fails the whole batch.

    A batch is the first waiting request plus whatever arrives within `linger` seconds of it
    (up to `max_batch`). Without the linger, callers released together by one batch (a
    server's threads) trickle back and split into two alternating half batches; a short one
    keeps them together, at the cost of that much latency for a lone request.
    """

    def __init__(
        self,
        execute: Callable[[Sequence[Request]], Sequence[Result | Exception]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        linger: float = DEFAULT_LINGER,
        name: str = "periodic-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._execute = execute
        self._max_batch = max_batch
        self._linger = linger
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Request, Future[Result]] | _Stop] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, request: Request) -> Future[Result]:
        """Queue `request`; the future completes when its batch is done."""
        future: Future[Result] = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"{self._name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((request, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Finish every request submitted so far, then stop the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s did not finish its last batch within %ss", self._name, timeout)

    def _serve(self) -> None:
        while True:
            batch, stop = self._gather()
            if batch:
                self._run(batch)
            if stop:
                return

    def _gather(self) -> tuple[list[tuple[Request, Future[Result]]], bool]:
        """Wait for one request, then take what else arrives within the linger time."""
        first = self._queue.get()
        if isinstance(first, _Stop):
            return [], True
        batch = [first]
        deadline = time.monotonic() + self._linger
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if isinstance(item, _Stop):
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self, batch: list[tuple[Request, Future[Result]]]) -> None:
        # A caller that gave up (its asyncio task was cancelled) is left out before any work.
        live = [pair for pair in batch if pair[1].set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outcomes = self._execute([request for request, _ in live])
            if len(outcomes) != len(live):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(live)}")
        except Exception as error:  # the batch's error belongs to every one of its callers
            for _, future in live:
                future.set_exception(error)
            return
        for (_, future), outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
