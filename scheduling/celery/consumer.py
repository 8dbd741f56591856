"""`PeriodicConsumer`: Celery's worker consumer without the native delayed delivery step.

Celery (5.5+) adds a ``DelayedDelivery`` step to every worker that consumes a quorum queue. It
declares 28 delay queues and exchanges, binds the app's queues to them, and does so again on
every reconnect for *each* broker URL, retrying a URL that refuses three times (1 + 3 + 5 s)
before the worker's event loop starts again. Periodic's exchange is direct, which Celery's native
delayed delivery does not serve (Celery says so in a warning), so the step buys nothing here and
costs a worker whose node died about 15 s without processing anything. Workers of a Periodic app
use this consumer (``worker_consumer``); a team that sets its own keeps it.
"""

from __future__ import annotations

from celery import bootsteps
from celery.worker.consumer import Consumer

__all__ = ["PeriodicConsumer"]

DELAYED_DELIVERY_STEP = "celery.worker.consumer.delayed_delivery:DelayedDelivery"


class _Blueprint(Consumer.Blueprint):  # type: ignore[misc, valid-type]  # a variable in the stubs
    default_steps = [
        step for step in Consumer.Blueprint.default_steps if step != DELAYED_DELIVERY_STEP
    ]


class PeriodicConsumer(Consumer):
    Blueprint: type[bootsteps.Blueprint] = _Blueprint
