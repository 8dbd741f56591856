"""The team's own Celery app: its configuration, its queue, plus one call for Periodic.

celery -A acme.celery_app:celery_app worker -Q <queue>
celery -A acme.celery_app:celery_app beat -S scheduling.scheduler:DatabaseScheduler
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from scheduling.celery import init_celery

celery_app = Celery("acme", include=["acme.tasks"])
celery_app.conf.update(
    task_queues=[Queue("acme-own", Exchange("acme"), routing_key="acme-own")],
    task_routes={"acme.tasks.send_invoice": {"queue": "acme-own"}},
)
init_celery(celery_app)  # settings from $PERIODIC_SETTINGS, read when Celery first needs them
