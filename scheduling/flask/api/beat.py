"""``/api/v1/beat``: which beat leads, until when its lease runs, and how far behind it is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from flask.typing import ResponseReturnValue

from scheduling.flask.api.openapi import operation
from scheduling.flask.api.schemas import BeatOut, beat_body
from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking
from scheduling.flask.services import current_services

__all__ = ["beat"]

beat = AsyncBlueprint("beat", __name__)


@beat.get("/beat")
@operation(
    "getBeat",
    "Beat leader, lease and dispatch lag; every beat instance seen",
    tag="beat",
    responses={200: BeatOut},
)
async def get_beat() -> ResponseReturnValue:
    services = current_services()
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
