"""Unauthenticated /readyz names a broken store without its password."""

from __future__ import annotations

import pytest

from project.app import create_app
from tests.support.api import make_settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "url",
    ["postgresql://periodic:hunter2@db:notaport/periodic", "://periodic:hunter2@db/periodic"],
)
def test_a_malformed_database_url_is_reported_without_its_password(
    url: str, broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(url, broker_url, beat={"scheduler": "static"}))
    try:
        response = app.test_client().get("/readyz")
    finally:
        app.extensions["periodic"].close()
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "not a database URL" in body
    assert "hunter2" not in body
    assert "hunter2" not in caplog.text
