"""The dashboard at ``/`` (SPEC §8): what runs, what is late, and buttons to steer it.

`init_dashboard` configures the signed session cookie and registers the blueprint. The cookie
needs ``[app].secret_key`` (``PERIODIC_APP__SECRET_KEY``): in production the dashboard refuses to
work without one, saying so on every page and in the log, while the API and health endpoints go
on working; in development a random key is made for the process (``nox -s serve`` passes a
persistent one so sessions survive restarts and all web workers agree).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from flask import Flask

from scheduling.config.settings import Settings
from scheduling.flask.dashboard.editor import editor
from scheduling.flask.dashboard.views import DISABLED_KEY, dashboard

__all__ = ["MIN_SECRET_KEY_LENGTH", "dashboard", "editor", "init_dashboard"]

logger = logging.getLogger(__name__)

MIN_SECRET_KEY_LENGTH = 32
SESSION_LIFETIME = timedelta(hours=12)


def init_dashboard(app: Flask, settings: Settings, *, url_prefix: str = "") -> None:
    """Register the dashboard under `url_prefix`; configure the session only if the app has none.

    A team's app that already has a ``SECRET_KEY`` keeps it and its own cookie settings: the
    dashboard's sign-in lives in that session under ``periodic_`` keys.
    """
    if app.config.get("SECRET_KEY"):
        app.register_blueprint(dashboard, url_prefix=url_prefix or None)
        app.register_blueprint(editor, url_prefix=url_prefix or None)
        return
    key = settings.app.secret_key.get_secret_value() if settings.app.secret_key else ""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        problem = (
            "no session key is set"
            if not key
            else f"the session key is shorter than {MIN_SECRET_KEY_LENGTH} characters"
        )
        if settings.app.environment == "production":
            message = (
                f"The dashboard is disabled: {problem}. Set PERIODIC_APP__SECRET_KEY (or "
                "[app].secret_key) to a random string of 32+ characters, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))', and restart."
            )
            logger.error("%s", message)
            app.config[DISABLED_KEY] = message
        key = secrets.token_urlsafe(32)  # development: sessions end with the process
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME="periodic_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # Sent over HTTPS only, except in development (plain http://localhost).
        SESSION_COOKIE_SECURE=settings.app.environment != "development",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.register_blueprint(dashboard, url_prefix=url_prefix or None)
    app.register_blueprint(editor, url_prefix=url_prefix or None)
