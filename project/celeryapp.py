"""Building the Celery app from settings, without Flask.

`create_celery(settings)` is what tests and the web app call with settings in hand. Without
settings (the `celery -A project.worker:celery_app` entry point) the file is read lazily, the
first time Celery needs its configuration, so importing the worker module reads nothing.
At worker and beat start the schedule is checked against the registered tasks and every queue
is declared, so a typo or a missing queue stops the process with a message, not a silent gap.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init

import project.tasks  # noqa: F401  (registers the shared tasks)
from project.appsettings import SETTINGS_KEY, SOURCE_KEY, settings_of
from project.ledger import connect_ledger
from scheduling.broker import declare_topology
from scheduling.compiler import compile_celery_config
from scheduling.errors import ConfigError
from scheduling.loading import load_settings, settings_path
from scheduling.registry import validate_against_registry
from scheduling.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "SETTINGS_KEY",
    "SOURCE_KEY",
    "celery_config",
    "create_celery",
    "prepare_broker_and_schedule",
    "settings_of",
]


def celery_config(settings: Settings, source: str) -> dict[str, Any]:
    return {**compile_celery_config(settings), SETTINGS_KEY: settings, SOURCE_KEY: source}


def create_celery(settings: Settings | None = None, source: str = "settings") -> Celery:
    app = Celery("periodic", set_as_current=False, task_cls="project.tasks.base:PeriodicTask")
    if settings is not None:
        app.conf.update(celery_config(settings, source))
    else:
        app.add_defaults(_load_from_file)
    _check_on_start(app)
    connect_ledger(app)
    return app


def _load_from_file() -> dict[str, Any]:
    path = settings_path()
    try:
        return celery_config(load_settings(path), str(path))
    except ConfigError as error:
        raise SystemExit(f"periodic: {error}") from None


def _check_on_start(app: Celery) -> None:
    def check(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        try:
            prepare_broker_and_schedule(app)
        except ConfigError as error:
            logger.critical("%s", error)
            raise SystemExit(f"periodic: {error}") from None

    worker_init.connect(check, weak=False)
    beat_init.connect(check, weak=False)


def prepare_broker_and_schedule(app: Celery) -> None:
    """Validate the schedule against the registry, then declare every queue."""
    settings = settings_of(app)
    validate_against_registry(settings, app.tasks, app.conf[SOURCE_KEY])
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        declare_topology(connection, settings)
