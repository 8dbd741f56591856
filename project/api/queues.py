"""``/api/v1/queues``: depth and consumers of every queue, asked of the broker all at once."""

from __future__ import annotations

import asyncio

from flask import Blueprint
from flask.typing import ResponseReturnValue

from project.api.openapi import operation
from project.api.schemas import QueueList, queue_body
from project.asyncio_bridge import run_blocking
from project.extension import Periodic, periodic
from project.operations import QueueView, queue_views
from scheduling.broker import QueueStatus

__all__ = ["broker_statuses", "queue_overview", "queues"]

queues = Blueprint("queues", __name__)


async def broker_statuses(services: Periodic) -> dict[str, QueueStatus]:
    """Every declared queue's status, asked of the broker all at once; raises broker errors."""
    broker = services.broker
    answers = await asyncio.gather(
        *(run_blocking(broker.queue_status, name) for name in services.settings.queues)
    )
    return {answer.name: answer for answer in answers}


async def queue_overview(services: Periodic) -> list[QueueView]:
    """Every declared queue with its broker status and routed entries.

    Raises `BrokerUnavailable` (503) when the broker does not answer.
    """
    by_name, counts = await asyncio.gather(
        broker_statuses(services),
        run_blocking(services.routed.counts, services.store, services.settings),
    )
    return queue_views(services.settings, by_name, counts)


@queues.get("/queues")
@operation(
    "listQueues",
    "Queues: priority, messages ready, consumers, and whether entries wait on no worker",
    tag="queues",
    responses={200: QueueList},
)
async def list_queues() -> ResponseReturnValue:
    views = await queue_overview(periodic())
    return {"items": [queue_body(view) for view in views]}
