"""The Celery entry point: ``celery -A project.worker:celery_app worker -Q high`` (or ``beat``).

The one module-level Celery object. Settings are read when Celery first needs them, from the
file named by ``PERIODIC_SETTINGS`` (default ``./settings.toml``), not at import.
"""

from scheduling.celery import create_celery

celery_app = create_celery()

__all__ = ["celery_app"]
