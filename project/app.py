"""The Flask application factory.

Run with ``flask --app project.app run`` or ``gunicorn 'project.app:create_app()'``.
"""

from __future__ import annotations

from flask import Flask

from project.api import api
from project.asyncio_bridge import PeriodicFlask
from project.celeryapp import create_celery
from project.dashboard import init_dashboard
from project.extension import PERIODIC, Periodic
from project.health import health
from scheduling.loading import load_settings, settings_path
from scheduling.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app; settings are read from the file only when none are given."""
    source = "settings"
    if settings is None:
        path = settings_path()
        settings, source = load_settings(path), str(path)
    app = PeriodicFlask("project")
    app.config["JSON_SORT_KEYS"] = False
    Periodic(settings, create_celery(settings, source)).init_app(app)
    app.register_blueprint(health)
    app.register_blueprint(api)
    init_dashboard(app, settings)
    return app


__all__ = ["PERIODIC", "create_app"]
