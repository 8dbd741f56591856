"""`call_webhook`: one HTTP call to an allow-listed host (see `scheduling.tasks.webhook_client`)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from celery import shared_task

from scheduling.celery.appsettings import settings_of
from scheduling.celery.task import PeriodicTask
from scheduling.config.durations import parse_duration
from scheduling.tasks.webhook_client import call

logger = logging.getLogger(__name__)


@shared_task(bind=True, base=PeriodicTask, name="scheduling.tasks.webhooks.call_webhook")
def call_webhook(
    self: PeriodicTask,
    url: str,
    method: str = "POST",
    json: Any = None,
    headers: dict[str, str] | None = None,
    timeout: str = "10s",
    expect_status: list[int] | None = None,
) -> dict[str, Any]:
    """Call `url`; 5xx and timeouts are retried with backoff, other surprises fail the run.

    `expect_status` None accepts any 2xx.
    """
    response = call(
        url,
        allowed_hosts=settings_of(self.app).webhooks.allowed_hosts,
        method=method,
        json=json,
        headers=headers,
        timeout=parse_duration(timeout).total_seconds(),
        expect_status=expect_status,
    )
    # The host only: webhook URLs often carry their secret in the path or query.
    host = urlsplit(url).hostname
    logger.info(
        "%s %s answered %d in %.3fs", method.upper(), host, response.status, response.elapsed
    )
    return {"status": response.status, "elapsed": round(response.elapsed, 3)}
