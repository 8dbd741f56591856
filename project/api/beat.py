"""``/api/v1/beat``: which beat leads, until when its lease runs, and how far behind it is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from flask import Blueprint
from flask.typing import ResponseReturnValue

from project.api.openapi import operation
from project.api.schemas import BeatOut, beat_body
from project.asyncio_bridge import run_blocking
from project.extension import periodic

__all__ = ["beat"]

beat = Blueprint("beat", __name__)


@beat.get("/beat")
@operation(
    "getBeat",
    "Beat leader, lease and dispatch lag; every beat instance seen",
    tag="beat",
    responses={200: BeatOut},
)
async def get_beat() -> ResponseReturnValue:
    services = periodic()
    store = services.store
    lease, beats = await asyncio.gather(
        run_blocking(store.current_lease), run_blocking(store.beats)
    )
    settings = services.settings
    return beat_body(
        settings.beat.scheduler,
        lease,
        beats,
        settings.beat.lag_alert.total_seconds(),
        datetime.now(UTC),
    )
