"""The Flask application factory.

Run with ``flask --app project.app run`` or ``gunicorn 'project.app:create_app()'``.
"""

from __future__ import annotations

from flask import Flask

from project.celeryapp import create_celery
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
    app = Flask("project")
    app.config["JSON_SORT_KEYS"] = False
    Periodic(settings, create_celery(settings, source)).init_app(app)
    app.register_blueprint(health)
    return app


__all__ = ["PERIODIC", "create_app"]
