"""Errors of `/api/v1` as RFC 9457 problem documents (``application/problem+json``).

Every refusal names what was wrong: validation errors list each field as ``{path, message}``
with the same dotted paths settings.toml errors use (``kwargs.recipients``, ``every``); store and
broker outages answer 503 with ``Retry-After``. Input values are never echoed, because task
arguments may hold secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, json, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from scheduling.errors import (
    ConfigOwnedEntry,
    EntryExists,
    EntryNotFound,
    StoreError,
    UnreadableEntry,
)
from scheduling.operations.entries import (
    BrokerUnavailable,
    FieldProblem,
    InvalidEntry,
    validation_problems,
)
from scheduling.timing.preview import PreviewTooCostly

__all__ = ["PROBLEM_JSON", "ApiProblem", "install_problem_handlers", "problem_response"]

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
API_PREFIX = "/api/v1"
TYPE_BASE = "https://periodic.readthedocs.io/problems/"


class ApiProblem(Exception):
    """Raise in a view to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: Sequence[FieldProblem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = list(errors)
        self.headers = dict(headers or {})

    @classmethod
    def invalid(cls, problems: Sequence[FieldProblem], detail: str | None = None) -> ApiProblem:
        return cls(
            422,
            "Invalid request",
            detail or "the request does not validate; nothing was changed",
            kind="validation",
            errors=problems,
        )


def problem_response(problem: ApiProblem) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.kind if problem.kind else "about:blank",
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors:
        body["errors"] = [{"path": p.path, "message": p.message} for p in problem.errors]
    response = Response(json.dumps(body), status=problem.status, mimetype=PROBLEM_JSON)
    response.headers.update(problem.headers)
    return response


def _http(error: HTTPException) -> ApiProblem:
    headers = {
        key: value for key, value in error.get_headers() if key.lower() in {"allow", "retry-after"}
    }
    code = error.code or 500
    detail = error.description if code != 500 else "the server failed; see its log"
    return ApiProblem(code, error.name, detail, headers=headers)


def _to_problem(error: Exception) -> ApiProblem:
    if isinstance(error, ApiProblem):
        return error
    if isinstance(error, InvalidEntry):
        return ApiProblem.invalid(error.problems)
    if isinstance(error, ValidationError):
        return ApiProblem.invalid(validation_problems(error))
    if isinstance(error, PreviewTooCostly):
        return ApiProblem.invalid([FieldProblem("count", str(error))], str(error))
    if isinstance(error, EntryNotFound):
        return ApiProblem(404, "Not found", str(error), kind="not-found")
    if isinstance(error, EntryExists):
        return ApiProblem(
            409, "Conflict", str(error), kind="exists", errors=[FieldProblem("name", str(error))]
        )
    if isinstance(error, UnreadableEntry):
        return ApiProblem(409, "Unreadable entry", str(error), kind="unreadable-entry")
    if isinstance(error, ConfigOwnedEntry):
        return ApiProblem(409, "Owned by settings.toml", str(error), kind="config-owned")
    if isinstance(error, BrokerUnavailable):
        return ApiProblem(
            503, "Broker unavailable", str(error), kind="broker-unavailable",
            headers={"Retry-After": "5"},
        )  # fmt: skip
    if isinstance(error, StoreError):
        logger.warning("store unavailable: %s", error)
        return ApiProblem(
            503, "Store unavailable", "the schedule store cannot be reached; retry shortly",
            kind="store-unavailable", headers={"Retry-After": "5"},
        )  # fmt: skip
    if isinstance(error, HTTPException):
        return _http(error)
    logger.exception("unhandled error in %s %s", request.method, request.path)
    return ApiProblem(500, "Internal Server Error", "the server failed; see its log")


def install_problem_handlers(blueprint: Blueprint) -> None:
    """Views of `blueprint` answer problems; so do unrouted paths under /api/v1 (404, 405)."""

    @blueprint.errorhandler(Exception)
    def view_error(error: Exception) -> Response:
        return problem_response(_to_problem(error))

    @blueprint.app_errorhandler(HTTPException)
    def routing_error(error: HTTPException) -> Response | HTTPException:
        if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
            return problem_response(_http(error))
        return error
