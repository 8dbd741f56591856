"""The Celery integration: configure an app from settings, keep the run ledger, the task base.

from scheduling.celery import init_celery
init_celery(celery_app)          # the one call in a team's own Celery setup
"""

from scheduling.celery.app import create_celery, init_celery, prepare_broker_and_schedule
from scheduling.celery.appsettings import ensure_settings, settings_of
from scheduling.celery.task import PeriodicTask

__all__ = [
    "PeriodicTask",
    "create_celery",
    "ensure_settings",
    "init_celery",
    "prepare_broker_and_schedule",
    "settings_of",
]
