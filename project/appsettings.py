"""Where a Celery app keeps the `Settings` it was built from.

A leaf module: tasks, the ledger and the app factory all need `settings_of`, and the app factory
imports the tasks, so the accessor cannot live in the factory's module without an import cycle.
"""

from __future__ import annotations

from celery import Celery

from scheduling.settings import Settings

__all__ = ["SETTINGS_KEY", "SOURCE_KEY", "settings_of"]

SETTINGS_KEY = "periodic_settings"
SOURCE_KEY = "periodic_settings_source"


def settings_of(app: Celery) -> Settings:
    """The settings an app was built from (read once, cached in its configuration)."""
    settings = app.conf[SETTINGS_KEY]
    assert isinstance(settings, Settings)
    return settings
