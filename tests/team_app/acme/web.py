"""The team's own Flask app, with Periodic mounted under /periodic."""

from __future__ import annotations

from flask import Flask

from acme.celery_app import celery_app
from scheduling.flask import Periodic


def create_app(settings_file: str | None = None) -> Flask:
    app = Flask("acme")
    app.config["SECRET_KEY"] = "acme-own-secret-key-for-its-own-sessions"
    if settings_file is not None:
        app.config["PERIODIC_SETTINGS"] = settings_file

    @app.get("/")
    def home() -> str:
        return "acme home"

    @app.cli.command("hello")
    def hello() -> None:
        """The team's own command, beside Periodic's."""
        print("hello from acme")

    Periodic(app, celery=celery_app)
    return app
