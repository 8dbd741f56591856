"""The interactive API docs page at ``/api/v1/docs``: Swagger UI from a package, no CDN.

The Swagger UI assets come from the ``flask-swagger-ui`` wheel (its ``dist`` folder; only the
files the page needs are served) and the page itself is ours, so it runs under the dashboard's
strict Content-Security-Policy: scripts and styles only from this origin, no inline script.
Like ``openapi.json``, the page is public (it describes the API, it reveals nothing); "Authorize"
takes a bearer token, and "Try it out" calls the API with it from the browser.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Response, send_from_directory, url_for
from markupsafe import escape

from scheduling.flask.asyncio_bridge import AsyncBlueprint

__all__ = ["ASSETS", "CSP", "SWAGGER_UI_DIST", "docs"]

SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).parent / "dist"
OWN_STATIC = Path(__file__).parent.parent / "static"
ASSETS = {
    "swagger-ui.css": SWAGGER_UI_DIST,
    "swagger-ui-bundle.js": SWAGGER_UI_DIST,
    "api-docs.js": OWN_STATIC,
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

docs = AsyncBlueprint("docs", __name__)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Periodic API</title>
<link rel="stylesheet" href="{css}">
</head>
<body data-spec="{spec}">
<div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@docs.get("/docs")
def docs_page() -> Response:
    page = _PAGE.format(
        css=escape(url_for(".docs_asset", filename="swagger-ui.css")),
        bundle=escape(url_for(".docs_asset", filename="swagger-ui-bundle.js")),
        init=escape(url_for(".docs_asset", filename="api-docs.js")),
        spec=escape(url_for("periodic_api.openapi.openapi_json")),
    )
    return _secure(Response(page, mimetype="text/html"))


@docs.get("/docs/<filename>")
def docs_asset(filename: str) -> Response:
    folder = ASSETS.get(filename)
    if folder is None:
        return _secure(Response("not found\n", status=404, mimetype="text/plain"))
    return _secure(send_from_directory(folder, filename, max_age=3600))
