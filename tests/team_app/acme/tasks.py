"""The team's tasks: plain ``@shared_task`` functions, bound to whichever Celery app runs them."""

from __future__ import annotations

from celery import shared_task


@shared_task
def refresh_cache(region: str, *, full: bool = False) -> str:
    """Pretend to rebuild a cache; the ledger records the run, the result says what it did."""
    return f"refreshed {region} ({'full' if full else 'incremental'})"


@shared_task
def send_invoice(customer: int) -> str:
    """A task the team routes itself (its own ``task_routes`` and queue)."""
    return f"invoice for {customer}"
