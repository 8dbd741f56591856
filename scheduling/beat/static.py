"""`StaticScheduler`: stock Beat (``[beat].scheduler = "static"``) with the compiled schedule.

Celery's `PersistentScheduler` opens its shelve file without creating the directory, so the
default ``var/celerybeat-schedule`` crashes beat in a fresh checkout. This subclass creates the
directory first and changes nothing else.
"""

from __future__ import annotations

from pathlib import Path

from celery.beat import PersistentScheduler

__all__ = ["StaticScheduler"]


class StaticScheduler(PersistentScheduler):
    def setup_schedule(self) -> None:
        filename: str = getattr(self, "schedule_filename")  # noqa: B009 - untyped in celery-types
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()
