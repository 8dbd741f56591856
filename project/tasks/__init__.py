"""Shipped tasks. Importing this package registers them as shared tasks with every Celery app."""

from project.tasks import heartbeat

__all__ = ["heartbeat"]
