"""The HTTP API at ``/api/v1`` (SPEC §7): one blueprint, a module per resource.

Every route needs a bearer token (`scheduling.flask.api.auth`) except the OpenAPI document and
the docs page, which describe the API and reveal nothing; every error is a problem document
(`scheduling.flask.api.problems`); the OpenAPI document is generated from the views
(`scheduling.flask.api.openapi`) and shown by Swagger UI at ``/docs``
(`scheduling.flask.api.docs`).
"""

from __future__ import annotations

from flask import request

from scheduling.flask.api.auth import authenticate, known_tokens
from scheduling.flask.api.beat import beat
from scheduling.flask.api.docs import docs
from scheduling.flask.api.openapi import openapi
from scheduling.flask.api.problems import install_problem_handlers
from scheduling.flask.api.queues import queues
from scheduling.flask.api.runs import runs
from scheduling.flask.api.schedules import schedules
from scheduling.flask.asyncio_bridge import AsyncBlueprint
from scheduling.flask.services import current_services

__all__ = ["API_PREFIX", "PUBLIC_ENDPOINTS", "api"]

API_PREFIX = "/api/v1"

api = AsyncBlueprint("periodic_api", __name__, url_prefix=API_PREFIX)
PUBLIC_ENDPOINTS = frozenset(
    {
        "periodic_api.openapi.openapi_json",
        "periodic_api.docs.docs_page",
        "periodic_api.docs.docs_asset",
    }
)
for child in (schedules, runs, queues, beat, openapi, docs):
    api.register_blueprint(child)
install_problem_handlers(api)


@api.before_request
def require_token() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    authenticate(known_tokens(current_services().settings.api.tokens))
