"""Dead letters into the run ledger: runs the broker dropped must not stay "dispatched" forever.

RabbitMQ dead-letters a message when its TTL runs out in the queue (a per-message ``expiration``,
as Celery's own ``apply_async(expires=...)`` sets, or a queue's ``message_ttl``) or when a
consumer rejects it without requeue. No worker ever sees such a message, so without this the
ledger would show the run as dispatched for ever — and an ``overlap = "skip"`` entry would skip
every later slot. The dead-letter exchange is a fanout: ``periodic.dead`` keeps each message for
inspection, and a copy in ``periodic.dead.ledger`` is consumed here, by a consumer bootstep in
every worker (competing consumers: one of them records each message), and acknowledged.

A quorum queue dead-letters a message itself once it was delivered ``worker.max_deliveries``
times (reason ``delivery_limit``); that run is recorded as failed with `DeliveryLimitExceeded`, as
the worker records it for classic queues.

Expired messages become EXPIRED runs; rejected or otherwise dropped ones become FAILED, unless
the ledger already has an outcome (the first finish wins, so a worker's own, more precise record
of a rejection is kept).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery, bootsteps
from kombu import Consumer, Message
from kombu.transport.base import StdChannel

from scheduling.celery.appsettings import SETTINGS_KEY, settings_of
from scheduling.celery.worker_state import store_for
from scheduling.config.compiler import dead_letter_ledger_queue, dead_letter_type
from scheduling.config.settings import QueueType
from scheduling.errors import StoreError
from scheduling.store import RunState, Store

__all__ = ["DeadLetter", "DeadLetterRecorder", "read_dead_letter", "record_dead_letter"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    task_id: str
    reason: str
    """RabbitMQ's word: expired, rejected, maxlen or delivery_limit."""
    queue: str


def read_dead_letter(headers: Mapping[str, Any]) -> DeadLetter | None:
    """The task id and the first death of a dead-lettered Celery message (None if not one)."""
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id:
        return None
    deaths = headers.get("x-death")
    first = deaths[0] if isinstance(deaths, list) and deaths else {}
    reason = headers.get("x-first-death-reason") or first.get("reason") or "unknown"
    queue = headers.get("x-first-death-queue") or first.get("queue") or "?"
    return DeadLetter(task_id, str(reason), str(queue))


def record_dead_letter(store: Store, letter: DeadLetter, at: datetime) -> None:
    """Close the run of a dead letter in the ledger (no-op for task ids the store never knew)."""
    if letter.reason == "expired":
        store.record_run_finished(
            letter.task_id,
            RunState.EXPIRED,
            at,
            error_message=f"expired in queue {letter.queue} before a worker took it",
        )
        return
    if letter.reason == "delivery_limit":
        store.record_run_finished(
            letter.task_id,
            RunState.FAILED,
            at,
            error_type="DeliveryLimitExceeded",
            error_message=(
                f"dead-lettered by quorum queue {letter.queue} after its delivery limit "
                "(worker.max_deliveries)"
            ),
        )
        return
    store.record_run_finished(
        letter.task_id,
        RunState.FAILED,
        at,
        error_type="DeadLettered",
        error_message=f"dead-lettered from queue {letter.queue} ({letter.reason})",
    )


class DeadLetterRecorder(bootsteps.ConsumerStep):
    """Consumes ``periodic.dead.ledger`` on the worker's own broker connection."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app: Celery = parent.app

    def get_consumers(self, channel: StdChannel) -> list[Consumer]:
        return [
            Consumer(
                channel,
                queues=[dead_letter_ledger_queue(self._queue_type())],
                on_message=self.on_message,
                prefetch_count=50,
            )
        ]

    def _queue_type(self) -> QueueType:
        if self.app.conf.get(SETTINGS_KEY) is None:
            return "classic"
        return dead_letter_type(settings_of(self.app))

    def on_message(self, message: Message) -> None:
        letter = read_dead_letter(message.headers or {})
        if letter is not None:
            try:
                record_dead_letter(store_for(self.app), letter, datetime.now(UTC))
            except StoreError as error:
                # Requeueing would spin while the store is down; the copy in periodic.dead stays.
                logger.error("ledger: cannot record dead letter %s: %s", letter, error)
        message.ack()
