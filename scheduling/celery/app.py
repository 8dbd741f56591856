"""Configuring a Celery app from Periodic settings, without Flask.

`init_celery(app)` is the one call a team adds to its own Celery setup; `create_celery(settings)`
builds the reference app (``project.worker:celery_app``) with it. Either way:

* settings are read lazily, the first time Celery needs its configuration, from the file named
  by ``app.conf.periodic_settings_file`` or ``$PERIODIC_SETTINGS`` (default ``./settings.toml``),
  so importing a worker module reads nothing; ``[app].imports`` are imported right after;
* Periodic's configuration (queues, confirms, late acks, reject on worker lost, prefetch 1, time
  limits, JSON only, sent and task events for Flower) enters as *defaults*: anything the team
  sets itself (``config_from_object``, ``conf.update``) wins, except that Periodic's queues are
  always added to the team's own ``task_queues``. Periodic's dispatch names each run's queue
  explicitly, so the team's ``task_routes`` only route what the team sends itself;
* tasks defined after the call (``@shared_task``, ``@app.task``) get `PeriodicTask` as their
  base class unless the app already chose its own (idempotent redelivery, delivery limit,
  transient retries, finished runs never re-run);
* the run ledger is kept from Celery's signals for every task of the app;
* at worker and beat start the schedule is checked against the app's registry and every queue
  is declared, so a typo or a missing queue stops the process with a message, not a silent gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, beat_init, worker_init
from kombu import Queue

import scheduling.tasks  # noqa: F401  (registers the shipped tasks)
from scheduling.broker.topology import declare_topology
from scheduling.celery.appsettings import SETTINGS_KEY, SOURCE_KEY, ensure_settings, settings_of
from scheduling.celery.ledger import connect_ledger
from scheduling.config.compiler import compile_celery_config, compile_queues
from scheduling.config.imports import import_task_modules
from scheduling.config.registry import validate_against_registry
from scheduling.config.settings import Settings
from scheduling.errors import ConfigError
from scheduling.logs import use_json_logs

logger = logging.getLogger(__name__)

__all__ = [
    "PERIODIC_TASK_CLASS",
    "celery_config",
    "create_celery",
    "init_celery",
    "prepare_broker_and_schedule",
]

PERIODIC_TASK_CLASS = "scheduling.celery.task:PeriodicTask"
_STOCK_TASK_CLASS = "celery.app.task:Task"


def celery_config(settings: Settings, source: str) -> dict[str, Any]:
    """Periodic's Celery configuration plus the settings it came from."""
    return {**compile_celery_config(settings), SETTINGS_KEY: settings, SOURCE_KEY: source}


def create_celery(settings: Settings | None = None, source: str = "settings") -> Celery:
    """The reference Celery app: Periodic's configuration is the whole configuration."""
    app = Celery("periodic", set_as_current=False, task_cls=PERIODIC_TASK_CLASS)
    if settings is not None:
        import_task_modules(settings, source)
        app.conf.update(celery_config(settings, source))
    _integrate(app, settings)
    return app


def init_celery(
    app: Celery, settings: Settings | None = None, *, source: str = "settings"
) -> Celery:
    """Make a team's own Celery app a Periodic app; returns it.

    Call it where the app is created, before its tasks are defined. `settings` default to the
    file (see the module docstring), read when Celery first needs its configuration.
    """
    if not getattr(app, "finalized", False) and str(app.task_cls) == _STOCK_TASK_CLASS:
        app.task_cls = PERIODIC_TASK_CLASS
        app.__dict__.pop("Task", None)  # a cached_property: rebuilt from task_cls on next use
    if settings is not None:
        import_task_modules(settings, source)
        config = celery_config(settings, source)
        app.add_defaults(lambda: config)
    _integrate(app, settings)
    return app


def _integrate(app: Celery, settings: Settings | None) -> None:
    if settings is None:
        app.add_defaults(_lazy_config(app))
    app.on_after_configure.connect(_add_periodic_queues, weak=False)
    _check_on_start(app)
    _json_logs_on_setup(app)
    connect_ledger(app)


class SettingsExit(SystemExit):
    """Unusable Periodic settings met while Celery configures itself: ends a Celery command
    (worker, beat) with the message alone, and carries the `ConfigError` for callers that are not
    a command (the Flask extension raises `error` instead)."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(f"periodic: {error}")
        self.error = error


def _lazy_config(app: Celery) -> Callable[[], dict[str, Any]]:
    def load() -> dict[str, Any]:
        try:
            settings, source = ensure_settings(app)
        except ConfigError as error:
            raise SettingsExit(error) from None
        return celery_config(settings, source)

    return load


def _add_periodic_queues(sender: Any = None, source: Any = None, **_: Any) -> None:
    """Periodic's queues join the team's own ``task_queues`` instead of being replaced by them."""
    if not isinstance(sender, Celery):
        return
    conf = sender.conf
    if not isinstance(conf.get(SETTINGS_KEY), Settings):
        return
    queues = list(conf.task_queues or [])
    names = {queue.name for queue in queues if isinstance(queue, Queue)}
    missing = [queue for queue in compile_queues(settings_of(sender)) if queue.name not in names]
    if missing and queues:
        conf.task_queues = [*queues, *missing]


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


def _json_logs_on_setup(app: Celery) -> None:
    """With ``[app].log_format = "json"``, worker and beat log JSON lines (`scheduling.logs`)
    through the handlers Celery has just set up, task logger included."""

    def setup(logger: logging.Logger | None = None, **_: Any) -> None:
        if logger is None:
            return
        try:
            settings, _source = ensure_settings(app)
        except ConfigError:
            return  # reported (and fatal) at worker_init / beat_init
        if settings.app.log_format == "json":
            use_json_logs(logger.handlers)

    after_setup_logger.connect(setup, weak=False)
    after_setup_task_logger.connect(setup, weak=False)


def prepare_broker_and_schedule(app: Celery) -> None:
    """Validate the schedule against the registry, then declare every queue."""
    settings, source = ensure_settings(app)
    validate_against_registry(settings, app.tasks, source)
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        declare_topology(connection, settings)
