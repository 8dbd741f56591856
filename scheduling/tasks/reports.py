"""`send_run_report`: e-mail a summary of the runs of every entry over a period."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import shared_task

from scheduling.celery.appsettings import settings_of
from scheduling.celery.task import PeriodicTask
from scheduling.celery.worker_state import store_for
from scheduling.config.durations import parse_duration
from scheduling.tasks.mailer import send_mail
from scheduling.tasks.reporting import render_report, summarize_runs

logger = logging.getLogger(__name__)


@shared_task(bind=True, base=PeriodicTask, name="scheduling.tasks.reports.send_run_report")
def send_run_report(
    self: PeriodicTask, recipients: list[str], period: str = "24h"
) -> dict[str, Any]:
    """Summarise the runs scheduled in the last `period` and mail it via ``[smtp]``."""
    settings = settings_of(self.app)
    end = datetime.now(UTC)
    start = end - parse_duration(period)
    runs = store_for(self.app).runs_between(start, end)
    report = summarize_runs(runs, start, end, late_after=settings.beat.lag_alert)
    subject, body = render_report(report)
    send_mail(settings.smtp, recipients, subject, body)
    logger.info("run report (%d runs) sent to %d recipient(s)", len(runs), len(recipients))
    return {"runs": len(runs), "recipients": len(recipients)}
