"""The task base's retry backoff and delivery counting keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import Reject

from scheduling.celery.ledger import describe_error
from scheduling.celery.task import delivery_key, retry_delay
from scheduling.config.settings import WorkerSettings
from scheduling.errors import DeliveryLimitExceeded


@pytest.mark.parametrize(("retries", "ceiling"), [(0, 2.0), (1, 4.0), (3, 16.0), (10, 60.0)])
def test_backoff_is_exponential_capped_and_fully_jittered(retries: int, ceiling: float) -> None:
    worker = WorkerSettings(
        retry_backoff=timedelta(seconds=2), retry_backoff_max=timedelta(minutes=1)
    )
    delays = [retry_delay(worker, retries) for _ in range(300)]
    assert all(0.0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.7, "jitter spreads over the whole window"
    assert min(delays) < ceiling * 0.3


def test_each_retry_message_has_its_own_delivery_counter() -> None:
    assert delivery_key("abc", 0) == "abc"
    assert delivery_key("abc", 2) == "abc/retry-2"


def test_the_ledger_describes_errors_by_class_name_and_unwraps_rejections() -> None:
    assert describe_error(ValueError("bad")) == ("ValueError", "bad")
    reason = DeliveryLimitExceeded("delivered 4 times")
    assert describe_error(Reject(reason, requeue=False)) == (
        "DeliveryLimitExceeded",
        "delivered 4 times",
    )
    kind, message = describe_error(RuntimeError("x" * 5000))
    assert kind == "RuntimeError"
    assert len(message) == 2000
    assert message.endswith("…")
