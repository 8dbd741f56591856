"""Where a Celery app keeps the `Settings` it was configured with.

A leaf module: tasks, the ledger, beat and `init_celery` all need `settings_of`, and
`init_celery` imports the tasks, so the accessor cannot live beside it without an import cycle.

A team's own Celery app may carry no Periodic settings at all (``celery -A team_app beat -S
scheduling.scheduler:DatabaseScheduler`` with nothing else): `ensure_settings` then reads them
once, from ``app.conf.periodic_settings_file`` or else ``$PERIODIC_SETTINGS`` (default
``./settings.toml``), imports ``[app].imports`` and caches the result in the app's configuration.
"""

from __future__ import annotations

import threading

from celery import Celery

from scheduling.config.imports import import_task_modules
from scheduling.config.loading import load_settings, settings_path
from scheduling.config.settings import Settings

__all__ = ["FILE_KEY", "SETTINGS_KEY", "SOURCE_KEY", "ensure_settings", "settings_of"]

SETTINGS_KEY = "periodic_settings"
SOURCE_KEY = "periodic_settings_source"
FILE_KEY = "periodic_settings_file"
"""Optional ``app.conf`` key naming the settings file (else ``$PERIODIC_SETTINGS``)."""

_lock = threading.RLock()
"""Re-entrant: the first read of ``app.conf`` may run Periodic's lazy loader, which calls back."""


def settings_of(app: Celery) -> Settings:
    """The settings an app was configured with (read once, cached in its configuration)."""
    settings = app.conf[SETTINGS_KEY]
    assert isinstance(settings, Settings)
    return settings


def ensure_settings(app: Celery) -> tuple[Settings, str]:
    """The app's settings and their source, loading them from the file on first use.

    Raises `ConfigError` (naming file and field) when the file is missing or invalid, or when a
    module of ``[app].imports`` cannot be imported.
    """
    with _lock:
        settings = app.conf.get(SETTINGS_KEY)
        if isinstance(settings, Settings):
            return settings, str(app.conf.get(SOURCE_KEY) or "settings")
        path = settings_path(app.conf.get(FILE_KEY))
        settings = load_settings(path)
        import_task_modules(settings, str(path))
        app.conf[SETTINGS_KEY] = settings
        app.conf[SOURCE_KEY] = str(path)
        return settings, str(path)
