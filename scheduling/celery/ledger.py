"""The run ledger, written by the worker from Celery's task signals.

Every run Periodic dispatched has a row in the store (claimed by beat or by "run now"); the worker
moves it along: started (with the worker's hostname), retried, and finished as succeeded, failed
(error type and message — never the task's arguments, which may carry secrets), expired or
revoked. Task ids the store does not know (tasks sent by someone else) are left alone.

Signals fire in two places. Start, success, retry and ordinary failures are sent in the pool
child that runs the task; expiry, revocation, hard time limits and rejected messages are handled
by the worker's main process. Each process opens its own store (`scheduling.celery.worker_state`).
A ledger write that fails is retried briefly and then logged: the bookkeeping must never be what
makes a task fail.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from celery import Celery
from celery.exceptions import Reject
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
    worker_process_init,
)

from scheduling.celery.deadletters import DeadLetterRecorder
from scheduling.celery.worker_state import forget_inherited_stores, store_for
from scheduling.errors import StoreError
from scheduling.store import RunRecord, RunState

__all__ = ["LEDGER_NOTE", "LedgerNote", "connect_ledger", "describe_error"]

logger = logging.getLogger(__name__)

LEDGER_NOTE = "periodic_ledger"
"""Attribute of the task request where the start handler leaves what the ledger said."""
ERROR_MESSAGE_LIMIT = 2000
WRITE_DELAYS = (0.1, 0.5)
"""Pauses between the attempts of one ledger write (so three attempts in all)."""

T = TypeVar("T")


@dataclass(frozen=True)
class LedgerNote:
    """What recording the start returned: the run (possibly already finished), or None when
    the store does not know the task id. Lets the task base skip a duplicate without a query."""

    run: RunRecord | None


def describe_error(error: BaseException) -> tuple[str, str]:
    """(type, message) as the ledger keeps them: the class name (what a person searches the
    docs or the code for) and the message, shortened; a rejection is described by its reason."""
    reason = getattr(error, "reason", None) if isinstance(error, Reject) else None
    if isinstance(reason, BaseException):
        error = reason
    name = type(error).__qualname__
    message = str(error)
    if len(message) > ERROR_MESSAGE_LIMIT:
        message = message[: ERROR_MESSAGE_LIMIT - 1] + "…"
    return name, message


def connect_ledger(app: Celery) -> None:
    """Record the runs of `app`'s tasks (other apps in the process are ignored), and have its
    workers record dead-lettered runs too (`scheduling.celery.deadletters`)."""
    app.steps["consumer"].add(DeadLetterRecorder)
    recorder = _LedgerRecorder(app)
    uid = f"periodic-ledger-{id(app)}"
    worker_process_init.connect(recorder.on_process_init, weak=False, dispatch_uid=uid)
    task_prerun.connect(recorder.on_prerun, weak=False, dispatch_uid=uid)
    task_success.connect(recorder.on_success, weak=False, dispatch_uid=uid)
    task_failure.connect(recorder.on_failure, weak=False, dispatch_uid=uid)
    task_retry.connect(recorder.on_retry, weak=False, dispatch_uid=uid)
    task_revoked.connect(recorder.on_revoked, weak=False, dispatch_uid=uid)
    task_postrun.connect(recorder.on_postrun, weak=False, dispatch_uid=uid)


class _LedgerRecorder:
    def __init__(self, app: Celery) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        """Task id → monotonic start, for runs this process began and the ledger may know."""

    def _ours(self, task: Any) -> bool:
        return getattr(task, "app", None) is self.app

    def _write(self, what: str, task_id: str, write: Callable[[], T]) -> tuple[bool, T | None]:
        """Run one store write with a few quick retries; (False, None) when it never worked."""
        for attempt, delay in enumerate((*WRITE_DELAYS, None), start=1):
            try:
                return True, write()
            except StoreError as error:
                if delay is None:
                    logger.error(
                        "ledger: could not record %s of run %s after %d attempts: %s",
                        what,
                        task_id,
                        attempt,
                        error,
                    )
                    break
                time.sleep(delay)
        return False, None

    def on_process_init(self, **_: Any) -> None:
        forget_inherited_stores()
        with self._lock:
            self._started.clear()

    def on_prerun(self, sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        if not self._ours(sender) or task_id is None:
            return
        request = sender.request
        hostname = str(getattr(request, "hostname", None) or socket.gethostname())

        def write() -> RunRecord | None:
            return store_for(self.app).record_run_started(task_id, hostname, datetime.now(UTC))

        written, run = self._write("the start", task_id, write)
        if run is not None or not written:
            # Known to the store, or unknown because the store failed: the finish is tried.
            with self._lock:
                self._started[task_id] = time.monotonic()
        setattr(request, LEDGER_NOTE, LedgerNote(run) if written else None)

    def _runtime(self, task_id: str) -> float | None:
        with self._lock:
            started = self._started.get(task_id)
        return None if started is None else time.monotonic() - started

    def on_success(self, sender: Any = None, runtime: float | None = None, **_: Any) -> None:
        if not self._ours(sender):
            return
        task_id = sender.request.id
        with self._lock:
            tracked = task_id in self._started
        if not tracked:
            return
        seconds = runtime if runtime is not None else self._runtime(task_id)
        self._write(
            "the success",
            task_id,
            lambda: store_for(self.app).record_run_finished(
                task_id, RunState.SUCCEEDED, datetime.now(UTC), runtime=seconds
            ),
        )

    def on_failure(
        self,
        sender: Any = None,
        task_id: str | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        if not self._ours(sender) or task_id is None or exception is None:
            return
        error_type, message = describe_error(exception)
        seconds = self._runtime(task_id)
        self._write(
            "the failure",
            task_id,
            lambda: store_for(self.app).record_run_finished(
                task_id,
                RunState.FAILED,
                datetime.now(UTC),
                runtime=seconds,
                error_type=error_type,
                error_message=message,
            ),
        )

    def on_retry(
        self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any
    ) -> None:
        if not self._ours(sender) or request is None:
            return
        task_id = str(request.id)
        cause = getattr(reason, "exc", None)
        if isinstance(cause, BaseException):
            error_type, message = describe_error(cause)
        else:
            error_type, message = "Retry", str(reason)
        self._write(
            "the retry",
            task_id,
            lambda: store_for(self.app).record_run_retry(
                task_id, error_type, message, datetime.now(UTC)
            ),
        )

    def on_revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        signum: Any = None,
        expired: bool = False,
        **_: Any,
    ) -> None:
        if not self._ours(sender) or request is None:
            return
        task_id = str(request.id)
        if expired:
            state, message = RunState.EXPIRED, "expired before a worker could start it"
        elif terminated:
            state, message = RunState.REVOKED, f"revoked and terminated (signal {signum})"
        else:
            state, message = RunState.REVOKED, "revoked before it started"
        self._write(
            f"the {state.value} state",
            task_id,
            lambda: store_for(self.app).record_run_finished(
                task_id, state, datetime.now(UTC), error_message=message
            ),
        )

    def on_postrun(self, sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        if not self._ours(sender) or task_id is None:
            return
        with self._lock:
            self._started.pop(task_id, None)
