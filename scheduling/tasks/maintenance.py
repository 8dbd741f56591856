"""`purge_runs`: retention for the run ledger and the entries' history (one policy for both)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery import shared_task

from scheduling.celery.task import PeriodicTask
from scheduling.celery.worker_state import store_for
from scheduling.config.durations import parse_duration
from scheduling.store import Store

logger = logging.getLogger(__name__)

PURGE_BATCH = 1000
"""Rows deleted per transaction: short transactions keep beat's writes flowing meanwhile."""


def purge_finished_runs(store: Store, older_than: timedelta, now: datetime) -> int:
    """Delete finished runs that ended before ``now - older_than``; return how many.

    History records made before the same instant go too, and leadership terms and broker
    outages that ended before it, so "how far back can I see (and explain)" has one answer.
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be a positive duration")
    purged = store.purge_runs(now - older_than, batch_size=PURGE_BATCH)
    changes = store.purge_history(now - older_than, batch_size=PURGE_BATCH)
    terms = store.purge_lease_terms(now - older_than) + store.purge_outages(now - older_than)
    logger.info(
        "purged %d history record(s) and %d leadership term(s) or outage(s) older than %s",
        changes,
        terms,
        now - older_than,
    )
    return purged


@shared_task(bind=True, base=PeriodicTask, name="scheduling.tasks.maintenance.purge_runs")
def purge_runs(self: PeriodicTask, older_than: str = "30d") -> int:
    """Keep the ledger to `older_than` (unfinished runs are never purged)."""
    purged = purge_finished_runs(store_for(self.app), parse_duration(older_than), datetime.now(UTC))
    logger.info("purged %d finished run(s) older than %s", purged, older_than)
    return purged
