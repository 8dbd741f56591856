"""`Periodic`: the Flask extension that mounts Periodic in any Flask app.

    periodic = Periodic()                       # or Periodic(app)
    periodic.init_app(app)                      # dashboard /periodic/, API /periodic/api/v1

It mounts the dashboard, the API (same bearer tokens), ``/healthz``, ``/readyz`` and ``/metrics``
under `url_prefix` (default ``/periodic``; the reference service uses ``""``) and registers the
``schedule`` and ``queues`` command groups on that app's CLI only (``flask --app team_app
schedule check``), never as global ``flask.commands`` entry points.

Settings are read once, here at the edge: the `settings` argument, else the file named by
``app.config["PERIODIC_SETTINGS"]``, else ``$PERIODIC_SETTINGS`` (default ``./settings.toml``).
``[app].imports`` are imported before anything else. Pass your own Celery app (set up with
`scheduling.celery.init_celery`) as `celery` to validate API writes against its registry; the
Flask app and the Celery app then share one settings object. Without one the extension builds
the reference configuration (`scheduling.celery.create_celery`). Store and broker open lazily,
so the app builds while either is down.

The dashboard signs its session with the app's ``SECRET_KEY`` when the app has one (its keys in
the session are prefixed ``periodic_``) and leaves the app's cookie settings alone; an app with no
key gets ``[app].secret_key`` and Periodic's own cookie (HttpOnly, SameSite=Strict, Secure
outside development).
"""

from __future__ import annotations

import logging

from celery import Celery
from flask import Flask

from scheduling.celery.app import SettingsExit, create_celery
from scheduling.celery.appsettings import FILE_KEY, SETTINGS_KEY, ensure_settings
from scheduling.config.imports import import_task_modules
from scheduling.config.loading import load_settings, settings_path
from scheduling.config.settings import Settings
from scheduling.flask.api import API_PREFIX, api
from scheduling.flask.cli import queues, schedule
from scheduling.flask.dashboard import init_dashboard
from scheduling.flask.health import health
from scheduling.flask.metrics import metrics_registry
from scheduling.flask.request_metrics import instrument_requests
from scheduling.flask.services import Services
from scheduling.logs import use_json_logs

__all__ = ["DEFAULT_URL_PREFIX", "SETTINGS_CONFIG_KEY", "Periodic"]

DEFAULT_URL_PREFIX = "/periodic"
SETTINGS_CONFIG_KEY = "PERIODIC_SETTINGS"
"""``app.config`` key naming the settings file for this app."""


class Periodic:
    """Mounts Periodic's API, dashboard, health, metrics and CLI in a Flask app."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: Settings | None = None,
        celery: Celery | None = None,
        url_prefix: str = DEFAULT_URL_PREFIX,
    ) -> None:
        self.settings = settings
        self.celery = celery
        self.url_prefix = url_prefix
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, url_prefix: str | None = None) -> Services:
        """Attach to `app`; returns the services the views use (also `app.extensions["periodic"]`).

        Raises `ConfigError` (naming file and field) for unusable settings or imports.
        """
        prefix = (self.url_prefix if url_prefix is None else url_prefix).rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"url_prefix must start with '/': {prefix!r}")
        try:
            settings, source = self._settings(app)
            if settings.app.log_format == "json":
                _json_logs(app)
            import_task_modules(settings, source)
            celery = self.celery if self.celery is not None else create_celery(settings, source)
            # What a worker imports at start (the app's ``include`` and ``imports``), so that
            # API writes and CLI checks see the same registry as the workers.
            celery.loader.import_default_modules()
        except SettingsExit as exit_:
            # A team's Celery app configured itself from its own settings file and failed:
            # raised as the error it is, not as the exit a Celery command would make of it.
            raise exit_.error from None
        services = Services(settings, celery, url_prefix=prefix, source=source)
        services.init_app(app)
        app.register_blueprint(health, url_prefix=prefix or None)
        app.register_blueprint(api, url_prefix=prefix + API_PREFIX)
        init_dashboard(app, settings, url_prefix=prefix)
        instrument_requests(app, metrics_registry(app.extensions, services))
        app.cli.add_command(schedule)
        app.cli.add_command(queues)
        return services

    def _settings(self, app: Flask) -> tuple[Settings, str]:
        celery = self.celery
        if celery is not None and not getattr(celery, "configured", False):
            # Before Celery reads its configuration, keys set on app.conf are kept as given.
            if self.settings is not None:
                celery.conf[SETTINGS_KEY] = self.settings
            elif app.config.get(SETTINGS_CONFIG_KEY):
                celery.conf[FILE_KEY] = str(app.config[SETTINGS_CONFIG_KEY])
        if self.settings is not None:
            return self.settings, "settings"
        if celery is not None and isinstance(celery.conf.get(SETTINGS_KEY), Settings):
            return ensure_settings(celery)
        path = settings_path(app.config.get(SETTINGS_CONFIG_KEY))
        return load_settings(path), str(path)


def _json_logs(app: Flask) -> None:
    """JSON lines for the root logger (given a stderr handler if it has none), the app's and
    gunicorn's own loggers: everything the web process writes."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    loggers = [root, app.logger, logging.getLogger("gunicorn.error")]
    loggers.append(logging.getLogger("gunicorn.access"))
    use_json_logs(handler for logger in loggers for handler in logger.handlers)
