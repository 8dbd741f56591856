"""Group commit for run-now: concurrent requests of one process share their store and broker trips.

Each run-now is an outbox of three steps (claim a ledger row, publish with confirms, mark it
dispatched), and on SQLite every write transaction is serialised across all processes. One
transaction and one confirm round trip per request caps a server at a few hundred runs a
second. A `Batcher` gathers the requests that arrive together and hands the lot to one
`execute` call, which claims, publishes and marks them together
(`scheduling.operations.entries.start_runs`).

Leader and followers, no thread of its own: the caller that finds no batch running becomes
the leader and runs `execute` on its own thread for itself and whoever is waiting (up to
`max_batch`); callers that arrive while a batch runs wait, and form the next batch. When the
leader's batch is done it wakes each of its followers with its outcome and hands the
leadership to the first caller waiting, whose thread then runs the next batch. Under load
batches grow by themselves: while one batch runs, the next one gathers. A leader lingers
`linger` seconds for company first: without it, callers released together by one batch
trickle back and split into alternating half batches (measured: 4.5 runs a batch instead of 8
from 8 threads), at the cost of that much latency for a lone request.
Why not a batcher thread: each request then crossed two more threads (the caller to the
batcher and back); on 2 busy cores every hand-off is a wake-up and a GIL acquisition among a
dozen runnable threads. Measured under wrk (gunicorn gthread, 2 x 8 threads, 16 connections,
alternating with the batcher thread on a shared machine), leader and followers cost 14-17%
less worker CPU per run-now and answered 11-16% more of them (docs/benchmarks.md, "Profiles of
the missed targets").

Every request gets its own outcome (a run, or the error for that request alone); when
`execute` itself fails, every request of the batch fails with that same error. `run` blocks
its caller until its outcome is known: async views call it on their thread's loop, which
serves that one request (`scheduling.flask.asyncio_bridge`), so nothing else waits.

A batcher holds only locks, no thread, but a lock held at a fork stays held in the child:
`scheduling.flask.services.Services` makes one per process id. `close` refuses new requests
and waits until the batches already asked for are done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

from scheduling.errors import BatcherClosed

__all__ = ["Batcher", "BatcherClosed"]

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Result = TypeVar("Result")

DEFAULT_MAX_BATCH = 256
DEFAULT_LINGER = 0.001
"""Seconds a leader waits for company before it runs its batch (what a lone request pays)."""


class _Ticket(Generic[Request, Result]):
    """One caller's place in a batch: its request, its outcome, and the lock it sleeps on.

    `wake` is taken at birth; releasing it wakes the caller, either with its outcome or, when
    `leads` is set, to run the next batch. A bare lock is the cheapest wake-up there is.
    """

    __slots__ = ("done", "leads", "outcome", "request", "wake")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.outcome: Result | Exception | None = None
        self.done = False
        self.leads = False
        self.wake = threading.Lock()
        self.wake.acquire()

    def settle(self, outcome: Result | Exception) -> None:
        self.outcome = outcome
        self.done = True
        self.wake.release()

    def result(self) -> Result:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return cast(Result, self.outcome)


class Batcher(Generic[Request, Result]):
    """Runs `execute` on batches of concurrent requests, on the thread of one of the callers.

    `execute(requests)` returns one outcome per request, in order: a result, or an exception
    to raise for that request. An exception raised by `execute` fails the whole batch.
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
        self._waiting: list[_Ticket[Request, Result]] = []
        self._leading = False
        self._closed = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._full = threading.Condition(self._lock)
        self._lingering = False

    @property
    def waiting(self) -> int:
        """Requests waiting for the next batch (not counting the batch that runs)."""
        with self._lock:
            return len(self._waiting)

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, request: Request) -> Result:
        """`request`'s outcome, once its batch is done: its result, or its error raised."""
        ticket: _Ticket[Request, Result] = _Ticket(request)
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"{self._name} is closed")
            self._waiting.append(ticket)
            lead = not self._leading
            self._leading = True
            if self._lingering and len(self._waiting) >= self._max_batch:
                self._full.notify()
        if not lead:
            ticket.wake.acquire()
            lead = ticket.leads
        if lead:
            self._lead()
        assert ticket.done, "a leader's own request is in its batch"
        return ticket.result()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new requests, and wait until every request already made has its outcome."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            while self._leading:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    logger.warning(
                        "%s did not finish its last batch within %ss", self._name, timeout
                    )
                    return
                self._idle.wait(remaining)

    def _lead(self) -> None:
        """Run the waiting batch on this thread, then pass the leadership on (or lay it down)."""
        with self._lock:
            if self._linger > 0 and len(self._waiting) < self._max_batch:
                self._lingering = True
                deadline = time.monotonic() + self._linger
                while len(self._waiting) < self._max_batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._full.wait(remaining):
                        break
                self._lingering = False
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
        try:
            self._run(batch)
        finally:
            for ticket in batch:
                if not ticket.done:  # execute was interrupted (KeyboardInterrupt, SystemExit)
                    ticket.settle(RuntimeError(f"{self._name}: the batch was interrupted"))
            with self._lock:
                successor = self._waiting[0] if self._waiting else None
                if successor is None:
                    self._leading = False
                    self._idle.notify_all()
                else:
                    successor.leads = True
            if successor is not None:
                successor.wake.release()

    def _run(self, batch: list[_Ticket[Request, Result]]) -> None:
        try:
            outcomes = self._execute([ticket.request for ticket in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as error:  # the batch's error belongs to every one of its callers
            for ticket in batch:
                ticket.settle(error)
            return
        for ticket, outcome in zip(batch, outcomes, strict=True):
            ticket.settle(outcome)
