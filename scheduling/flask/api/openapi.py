"""The OpenAPI 3.1 document at ``/api/v1/openapi.json``, generated from the views themselves.

Each view declares its operation with `@operation(...)` (id, summary, the pydantic models of its
query, body and responses); the document walks the app's URL map, so a route without a
declaration, or a declaration without a route, cannot go unnoticed (a test checks both). Schemas
come from the same pydantic models that validate requests, via ``models_json_schema``: request
bodies in validation mode, responses in serialization mode.

Why not flask-openapi3 / spectree / apispec: each wraps the view to parse and validate the
request itself, before our bearer-token check and with its own error body, and brings its own
async handling; what we need from them (pydantic -> JSON Schema) is one pydantic call, and the
route table is Flask's own ``url_map``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Flask, current_app
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from scheduling.config.durations import format_duration
from scheduling.flask.api.problems import PROBLEM_JSON
from scheduling.flask.api.schemas import Problem
from scheduling.flask.asyncio_bridge import AsyncBlueprint

__all__ = ["Operation", "openapi", "openapi_document", "operation"]

F = TypeVar("F", bound=Callable[..., Any])
API_VERSION = "1.0.0"
ATTRIBUTE = "openapi_operation"
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

openapi = AsyncBlueprint("openapi", __name__)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    tag: str
    responses: Mapping[int, type[BaseModel] | None]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = field(default=())
    description: str | None = None
    public: bool = False
    """Answered without a token: no security requirement, no 401."""


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    responses: Mapping[int, type[BaseModel] | None],
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    description: str | None = None,
    public: bool = False,
) -> Callable[[F], F]:
    """Declare a view's operation for the document (put it under the route decorator)."""
    declared = Operation(
        operation_id, summary, tag, responses, query, body, errors, description, public
    )

    def attach(view: F) -> F:
        setattr(view, ATTRIBUTE, declared)
        return view

    return attach


class PeriodicJsonSchema(GenerateJsonSchema):
    """Durations are strings like ``"90s"``/``"1h30m"``, not ISO-8601 durations."""

    def timedelta_schema(self, schema: core_schema.TimedeltaSchema) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": r"^([0-9]+(\.[0-9]+)?(ms|d|h|m|s))+$",
            "examples": ["90s", "15m", "1h30m"],
        }

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def declared_operations(app: Flask) -> list[tuple[str, str, Operation]]:
    """(OpenAPI path, method, operation) for every documented route of `app`."""
    found = []
    for rule in app.url_map.iter_rules():
        declared = getattr(app.view_functions.get(rule.endpoint), ATTRIBUTE, None)
        if not isinstance(declared, Operation):
            continue
        path = _RULE_ARGUMENT.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), declared))
    return found


def openapi_document(app: Flask) -> dict[str, Any]:
    operations = declared_operations(app)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for _, _, declared in operations:
        if declared.body is not None:
            models.append((declared.body, "validation"))
        models.extend((m, "serialization") for m in declared.responses.values() if m is not None)
    unique = list(dict.fromkeys(models))
    keys, definitions = models_json_schema(
        unique,
        ref_template="#/components/schemas/{model}",
        schema_generator=PeriodicJsonSchema,
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, method, declared in operations:
        paths.setdefault(path, {})[method] = _operation_object(path, method, declared, keys)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Periodic API",
            "version": API_VERSION,
            "description": "Schedules, runs, queues and beat of a Periodic deployment.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A read or write token from [api].tokens.",
                }
            },
        },
    }


def _operation_object(
    path: str, method: str, declared: Operation, keys: Mapping[Any, Any]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _RULE_ARGUMENT.findall(path.replace("{", "<").replace("}", ">"))
    ]
    if declared.query is not None:
        schema = declared.query.model_json_schema(schema_generator=PeriodicJsonSchema)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k not in {"title", "description"}},
            }
            if "description" in prop:
                parameter["description"] = prop["description"]
            parameters.append(parameter)
    result: dict[str, Any] = {
        "operationId": declared.operation_id,
        "summary": declared.summary,
        "tags": [declared.tag],
        "responses": _responses(method, declared, keys),
    }
    if declared.public:
        result["security"] = []
    if declared.description:
        result["description"] = declared.description
    if parameters:
        result["parameters"] = parameters
    if declared.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": keys[(declared.body, "validation")]}},
        }
    return result


def _responses(method: str, declared: Operation, keys: Mapping[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in declared.responses.items():
        entry: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if model is not None:
            entry["content"] = {"application/json": {"schema": keys[(model, "serialization")]}}
        responses[str(status)] = entry
    errors = {503, *declared.errors} if declared.public else {401, 503, *declared.errors}
    if method != "get":
        errors.add(403)
    if declared.query is not None or declared.body is not None:
        errors.add(422)
    if declared.body is not None:
        errors.add(415)
    problem = keys[(Problem, "serialization")]
    for status in sorted(errors):
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": problem}},
        }
    return responses


_CACHE_KEY = "periodic.openapi"


@openapi.get("/openapi.json")
@operation(
    "getOpenApi",
    "This document (OpenAPI 3.1); no token needed",
    tag="meta",
    responses={200: None},
    public=True,
)
def openapi_json() -> dict[str, Any]:
    """The document (built once per app; it only depends on the routes)."""
    app: Any = current_app
    document = app.extensions.get(_CACHE_KEY)
    if document is None:
        document = openapi_document(app._get_current_object())
        app.extensions[_CACHE_KEY] = document
    assert isinstance(document, dict)
    return document
