"""`PeriodicTask`: the Task base that makes at-least-once delivery safe to live with.

RabbitMQ redelivers an unacknowledged message whenever a worker dies mid-task (``acks_late`` and
``task_reject_on_worker_lost`` are on, so work is never lost). That buys three duties, done here
before the task body runs and around it:

* Idempotency: a message whose run the ledger already shows as succeeded (the worker died
  between finishing and acknowledging, or beat republished it) is acknowledged and skipped.
* Bounded redelivery: a message that keeps killing its worker would loop forever. Classic queues
  have no delivery limit, so deliveries are counted in the store (only redelivered messages cost
  a write) and past ``worker.max_deliveries`` the message is rejected without requeue, which
  dead-letters it to ``periodic.dead``; the ledger records the run as failed. A quorum queue
  counts for itself (``x-delivery-limit``, compiled from the same setting) and marks a
  redelivered message with ``x-delivery-count``: such a message costs no store write, and the
  broker dead-letters it past the limit (`scheduling.celery.deadletters` closes the run).
* Retries for transient errors only (`TransientError`, `ConnectionError`, `TimeoutError`):
  exponential backoff with full jitter, bounded by ``worker.max_retries``. Anything else fails at
  once: retrying a bug only repeats it.

The app makes it the default task class, so user tasks get the same guarantees; shipped tasks
also name it explicitly.
"""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Ignore, Reject

from scheduling.celery.appsettings import SETTINGS_KEY, settings_of
from scheduling.celery.ledger import LEDGER_NOTE, LedgerNote
from scheduling.celery.worker_state import store_for
from scheduling.config.settings import WorkerSettings
from scheduling.errors import DeliveryLimitExceeded, StoreError, TransientError
from scheduling.store import RunRecord, RunState

__all__ = ["PeriodicTask", "delivery_key", "retry_delay"]

logger = logging.getLogger(__name__)

BROKER_DELIVERY_COUNT = "x-delivery-count"
"""The header a quorum queue puts on a message it delivers again: the broker counts, not us."""


def delivery_key(task_id: str, retries: int) -> str:
    """The delivery counter's key: a retry is a new message, so it gets a counter of its own."""
    return task_id if retries == 0 else f"{task_id}/retry-{retries}"


def retry_delay(worker: WorkerSettings, retries: int) -> float:
    """Seconds before retry number ``retries + 1``: uniform in [0, min(max, base * 2**retries)].

    Full jitter spreads the retries of many runs that failed together (an outage) over the
    whole window instead of having them return in one wave.
    """
    base = worker.retry_backoff.total_seconds()
    ceiling = min(worker.retry_backoff_max.total_seconds(), base * 2**retries)
    return random.uniform(0.0, max(ceiling, 0.0))


class PeriodicTask(Task):  # type: ignore[type-arg]
    """Celery task with idempotent redelivery, a delivery limit and transient-error retries."""

    transient_errors: ClassVar[tuple[type[Exception], ...]] = (
        TransientError,
        ConnectionError,
        TimeoutError,
    )

    def _worker_settings(self) -> WorkerSettings | None:
        if self.app.conf.get(SETTINGS_KEY) is None:
            return None
        return settings_of(self.app).worker

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        worker = self._worker_settings()
        if worker is None:
            return
        request = self.request
        redelivered = (request.delivery_info or {}).get("redelivered")
        if redelivered and request.get(BROKER_DELIVERY_COUNT) is None:
            self._check_delivery_limit(task_id, int(request.retries or 0), worker)
        run = self._ledger_run(task_id)
        if run is not None and run.state is RunState.SUCCEEDED:
            logger.warning(
                "run %s of %s already succeeded; acknowledging the duplicate without running it",
                task_id,
                self.name,
            )
            raise Ignore()

    def _check_delivery_limit(self, task_id: str, retries: int, worker: WorkerSettings) -> None:
        try:
            redeliveries = store_for(self.app).record_delivery(delivery_key(task_id, retries))
        except StoreError as error:
            logger.warning("cannot count deliveries of %s (running it anyway): %s", task_id, error)
            return
        deliveries = redeliveries + 1
        if deliveries > worker.max_deliveries:
            reason = DeliveryLimitExceeded(
                f"delivered {deliveries} times (worker.max_deliveries = {worker.max_deliveries}); "
                "rejected to the dead-letter queue periodic.dead"
            )
            logger.error("%s[%s]: %s", self.name, task_id, reason)
            raise Reject(reason, requeue=False)

    def _ledger_run(self, task_id: str) -> RunRecord | None:
        note = getattr(self.request, LEDGER_NOTE, None)
        if isinstance(note, LedgerNote):
            return note.run
        try:
            return store_for(self.app).get_run(task_id)
        except StoreError as error:
            logger.warning("cannot read the ledger for %s (running it anyway): %s", task_id, error)
            return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except self.transient_errors as error:
            worker = self._worker_settings()
            if worker is None or self.request.called_directly:
                raise
            retries = int(self.request.retries or 0)
            raise self.retry(
                exc=error,
                countdown=retry_delay(worker, retries),
                max_retries=worker.max_retries,
            ) from error
