"""The reference service's Flask application factory.

Run with ``flask --app project.app run`` or ``gunicorn 'project.app:create_app()'``. It is built
only on `scheduling`'s public API, the way a team builds its own: a Flask app with the
`Periodic` extension mounted at the root.
"""

from __future__ import annotations

from flask import Flask

from scheduling import ConfigError, Settings
from scheduling.flask import Periodic


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app; settings are read from the file only when none are given.

    An unusable settings file stops the process with every problem listed (exit 1), for the
    server and for ``flask --app project.app …`` commands alike.
    """
    app = Flask("project", static_folder=None)  # the dashboard serves its own /static
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's own switch
    try:
        Periodic(app, settings=settings, url_prefix="")
    except ConfigError as error:
        raise SystemExit(f"periodic: {error}") from None
    return app


__all__ = ["create_app"]
