"""The Beat scheduler's public address: ``celery beat -S
scheduling.scheduler:DatabaseScheduler``."""

from scheduling.beat.scheduler import DatabaseScheduler

__all__ = ["DatabaseScheduler"]
