"""Fixtures of the integration suites: the API app on a real store and a real broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from project.app import create_app
from scheduling.config.settings import Settings
from tests.support.api import make_settings, services, temporary_queues


@pytest.fixture
def api_settings(store_url: str, broker_url: str) -> Iterator[Settings]:
    settings = make_settings(store_url, broker_url)
    with temporary_queues(settings):
        yield settings


@pytest.fixture
def api_app(api_settings: Settings) -> Iterator[Flask]:
    app = create_app(api_settings)
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        services(app).close()


@pytest.fixture
def client(api_app: Flask) -> FlaskClient:
    return api_app.test_client()
