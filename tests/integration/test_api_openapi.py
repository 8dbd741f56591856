"""The OpenAPI document: complete, and true to what the API answers (schemathesis, bounded)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scheduling.flask.api.openapi import declared_operations
from tests.support.api import HEARTBEAT, READ, WRITE

pytestmark = pytest.mark.integration

EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'periodic.db'}"


@pytest.fixture
def seeded_app(api_app: Flask) -> Flask:
    """An app with one entry and one run, so generated requests can find something."""
    client = api_app.test_client()
    body = {"name": "ping", "task": HEARTBEAT, "every": "1h"}
    assert client.post("/api/v1/schedules", json=body, headers=WRITE).status_code == 201
    assert client.post("/api/v1/schedules/ping/run", headers=WRITE).status_code == 202
    return api_app


def test_no_5xx_and_no_response_outside_the_schema(seeded_app: Flask) -> None:
    """Every operation, a few generated requests each, with a write token."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", seeded_app, headers=READ)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    declared = {f"{method.upper()} {path}" for path, method, _ in declared_operations(seeded_app)}
    assert declared - labels <= {"GET /api/v1/openapi.json"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=WRITE, checks=CHECKS)

        check()


UNDOCUMENTED = {"/api/v1/docs", "/api/v1/docs/<filename>"}
"""The human docs page and its assets: HTML and files, not API operations."""


def test_every_api_route_is_documented(api_app: Flask) -> None:
    documented = {(path, method) for path, method, _ in declared_operations(api_app)}
    for rule in api_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.rule in UNDOCUMENTED:
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented


def test_the_document_is_openapi_3_1_with_bearer_auth(api_app: Flask) -> None:
    document = api_app.test_client().get("/api/v1/openapi.json", headers=READ).get_json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    create = document["paths"]["/api/v1/schedules"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"name", "task", "every", "cron", "at", "queue", "kwargs"} <= set(body["properties"])
    assert body["properties"]["every"]["anyOf"][0]["examples"] == ["90s", "15m", "1h30m"]
    assert {"201", "401", "403", "409", "415", "422", "503"} <= set(create["responses"])
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_the_document_is_public_and_types_instants_as_date_time(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    schemas = document["components"]["schemas"]
    run = schemas["RunOut"]["properties"]
    assert run["scheduled_for"] == {
        "type": "string",
        "format": "date-time",
        "title": "Scheduled For",
    }
    assert {"type": "string", "format": "date-time"} in run["finished_at"]["anyOf"]
    assert schemas["NextOut"]["properties"]["fire_times"]["items"]["format"] == "date-time"
    assert client.get("/api/v1/schedules").status_code == 401


def test_the_docs_page_serves_swagger_ui_from_the_package_under_a_strict_csp(
    client: FlaskClient,
) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp
    html = page.get_data(as_text=True)
    assert "<script>" not in html
    assert "//" not in html.replace("<!doctype html>", "").split("<body")[0].replace("</", "")
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(sources) == [
        "/api/v1/docs/api-docs.js",
        "/api/v1/docs/swagger-ui-bundle.js",
        "/api/v1/docs/swagger-ui.css",
    ]
    for source in sources:
        with client.get(source) as asset:
            assert asset.status_code == 200, source
            assert asset.headers["Content-Security-Policy"] == csp
    with client.get("/api/v1/docs/swagger-ui-bundle.js") as bundle:
        assert b"SwaggerUIBundle" in bundle.data
    assert 'data-spec="/api/v1/openapi.json"' in html
    assert client.get("/api/v1/docs/oauth2-redirect.html").status_code == 404
    assert client.get("/api/v1/docs/..%2Fsettings.toml").status_code == 404
