"""`PeriodicTask`: the Task base that makes at-least-once delivery safe to live with.

RabbitMQ redelivers an unacknowledged message whenever a worker dies mid-task (``acks_late`` and
``task_reject_on_worker_lost`` are on, so work is never lost). That buys three duties, done here
before the task body runs and around it:

* Idempotency: a message whose run the ledger already shows as succeeded (the worker died
  between finishing and acknowledging, or beat republished it) is acknowledged and skipped.
* Finished means finished: a message whose run the ledger closed as revoked, missed, skipped or
  expired, whose entry was deleted, or whose row is gone (purged) is acknowledged and skipped,
  with the reason in the log and on the run.
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
from datetime import UTC, datetime
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Ignore, Reject

from scheduling.celery.appsettings import SETTINGS_KEY, settings_of
from scheduling.celery.ledger import LEDGER_NOTE, LedgerNote
from scheduling.celery.secrets import SecretSource, withhold_secrets
from scheduling.celery.worker_state import store_for
from scheduling.config.secret_refs import has_secret_refs, resolve_secrets, secret_names
from scheduling.config.settings import WorkerSettings
from scheduling.errors import DeliveryLimitExceeded, StoreError, TransientError
from scheduling.store import RunRecord, RunState

__all__ = ["REFUSED_STATES", "PeriodicTask", "delivery_key", "retry_delay"]

logger = logging.getLogger(__name__)

BROKER_DELIVERY_COUNT = "x-delivery-count"
"""The header a quorum queue puts on a message it delivers again: the broker counts, not us."""
PERIODIC_HEADER = "periodic_entry"
SECRETS_KEY = "periodic_secret_source"
"""Where the worker process keeps its `SecretSource` (in the app's configuration)."""
REFUSED_STATES = frozenset({RunState.REVOKED, RunState.MISSED, RunState.SKIPPED, RunState.EXPIRED})
"""Final states a worker never overrides by running the message anyway."""


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
        answered, run = self._ledger_run(task_id)
        if run is not None and run.state is RunState.SUCCEEDED:
            logger.warning(
                "run %s of %s already succeeded; acknowledging the duplicate without running it",
                task_id,
                self.name,
            )
            raise Ignore()
        reason = self._finished_elsewhere(answered, run)
        if reason is not None:
            logger.warning(
                "run %s of %s is not run: %s; acknowledging the message", task_id, self.name, reason
            )
            if run is not None:
                self._note(task_id, run, reason)
            raise Ignore()

    def _finished_elsewhere(self, answered: bool, run: RunRecord | None) -> str | None:
        """Why a message must not run although it was delivered, or None to run it.

        The ledger is the truth: a run it closed as revoked (the API said 503, nothing runs),
        missed, skipped or expired never executes, even if the broker enqueued the message it
        did not confirm in time; nor does the run of a deleted entry or a run whose row is gone
        (purged after it finished: a late redelivery of finished work). A message Periodic did
        not send (no ``periodic_entry`` header, no row) is none of its business and runs.
        """
        if run is None:
            if answered and self._sent_by_periodic():
                return "its run is no longer in the ledger (finished and purged, or deleted)"
            return None
        if run.state in REFUSED_STATES:
            return f"the ledger closed the run as {run.state.value}"
        try:
            exists = store_for(self.app).entry_exists(run.entry)
        except StoreError as error:
            logger.warning("cannot check entry %r (running it anyway): %s", run.entry, error)
            return None
        return None if exists else f"its entry {run.entry!r} was deleted"

    def _sent_by_periodic(self) -> bool:
        request = self.request
        headers = getattr(request, "headers", None) or {}
        return bool(getattr(request, PERIODIC_HEADER, None) or headers.get(PERIODIC_HEADER))

    def _note(self, task_id: str, run: RunRecord, reason: str) -> None:
        """Close (or annotate) the run with why its message was acknowledged unrun."""
        note = f"a delivered message was acknowledged without running: {reason}"
        try:
            store_for(self.app).note_refused_delivery(task_id, note, datetime.now(UTC))
        except StoreError as error:
            logger.warning("cannot record why run %s was not run: %s", task_id, error)

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

    def _ledger_run(self, task_id: str) -> tuple[bool, RunRecord | None]:
        """(the ledger answered, the run it holds for `task_id`)."""
        note = getattr(self.request, LEDGER_NOTE, None)
        if isinstance(note, LedgerNote):
            return True, note.run
        try:
            return True, store_for(self.app).get_run(task_id)
        except StoreError as error:
            logger.warning("cannot read the ledger for %s (running it anyway): %s", task_id, error)
            return False, None

    def _secrets(self) -> SecretSource:
        source = self.app.conf.get(SECRETS_KEY)
        if not isinstance(source, SecretSource):
            worker = self._worker_settings()
            source = SecretSource.of_process(worker.secrets_file if worker else None)
            self.app.conf[SECRETS_KEY] = source
        return source

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (has_secret_refs(args) or has_secret_refs(kwargs)):
            return self._call(*args, **kwargs)
        # Resolved here, after the message was logged and recorded: only names travel.
        values = self._secrets().values()
        names = secret_names(args) | secret_names(kwargs)
        args = tuple(resolve_secrets(list(args), values))
        kwargs = resolve_secrets(kwargs, values)
        used = [values[name] for name in names]
        try:
            return self._call(*args, **kwargs)
        except BaseException as error:
            withheld = withhold_secrets(error, used)
            if withheld is not error:
                raise withheld from None
            raise

    def _call(self, *args: Any, **kwargs: Any) -> Any:
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
