"""The services a Flask app carries: its settings and its Celery app, attached by `init_app`."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask, current_app

from scheduling.settings import Settings

PERIODIC = "periodic"


@dataclass
class Periodic:
    settings: Settings
    celery: Celery

    def init_app(self, app: Flask) -> None:
        app.extensions[PERIODIC] = self


def periodic() -> Periodic:
    """The services of the current app (views only; library code takes them as arguments)."""
    services = current_app.extensions[PERIODIC]
    assert isinstance(services, Periodic)
    return services
