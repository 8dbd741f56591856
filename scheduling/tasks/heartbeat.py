"""`heartbeat`: the smallest real task, proving beat → broker → worker end to end.

Its runs land in the ledger like any other, so the newest succeeded heartbeat run is the
evidence readiness looks at: beat dispatched, the broker routed, a worker ran and recorded.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from typing import Any

from celery import shared_task

from scheduling.celery.task import PeriodicTask

logger = logging.getLogger(__name__)


def beat_report(hostname: str, now: datetime) -> dict[str, Any]:
    return {"hostname": hostname, "at": now.isoformat()}


@shared_task(name="scheduling.tasks.heartbeat.heartbeat", ignore_result=True, base=PeriodicTask)
def heartbeat() -> dict[str, Any]:
    """Log and return where and when the pipeline was last seen working."""
    report = beat_report(socket.gethostname(), datetime.now(UTC))
    logger.info("heartbeat from %s at %s", report["hostname"], report["at"])
    return report
