"""Liveness: answers as long as the process serves requests."""

from __future__ import annotations

from flask import Blueprint

health = Blueprint("health", __name__)


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
