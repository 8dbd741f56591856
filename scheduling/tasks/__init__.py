"""Shipped tasks. Importing this package registers them as shared tasks with every Celery app."""

from scheduling.tasks import heartbeat, maintenance, reports, webhooks

__all__ = ["heartbeat", "maintenance", "reports", "webhooks"]
