"""The HTTP API at ``/api/v1`` (SPEC §7): one blueprint, a module per resource.

Every route needs a bearer token (`project.api.auth`); every error is a problem document
(`project.api.problems`); the OpenAPI document is generated from the views
(`project.api.openapi`).
"""

from __future__ import annotations

from flask import Blueprint

from project.api.auth import authenticate, known_tokens
from project.api.beat import beat
from project.api.openapi import openapi
from project.api.problems import install_problem_handlers
from project.api.queues import queues
from project.api.runs import runs
from project.api.schedules import schedules
from project.extension import periodic

__all__ = ["API_PREFIX", "api"]

API_PREFIX = "/api/v1"

api = Blueprint("api", __name__, url_prefix=API_PREFIX)
for child in (schedules, runs, queues, beat, openapi):
    api.register_blueprint(child)
install_problem_handlers(api)


@api.before_request
def require_token() -> None:
    authenticate(known_tokens(periodic().settings.api.tokens))
