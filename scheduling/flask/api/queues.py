"""``/api/v1/queues``: depth and consumers of every queue, asked of the broker all at once."""

from __future__ import annotations

import asyncio

from flask.typing import ResponseReturnValue

from scheduling.broker.topology import QueueStatus
from scheduling.flask.api.openapi import operation
from scheduling.flask.api.schemas import QueueList, queue_body
from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking
from scheduling.flask.services import Services, current_services
from scheduling.operations.entries import QueueView, queue_views

__all__ = ["broker_statuses", "queue_overview", "queues"]

queues = AsyncBlueprint("queues", __name__)


async def broker_statuses(services: Services) -> dict[str, QueueStatus]:
    """Every declared queue's status, asked of the broker all at once; raises broker errors."""
    broker = services.broker
    answers = await asyncio.gather(
        *(run_blocking(broker.queue_status, name) for name in services.settings.queues)
    )
    return {answer.name: answer for answer in answers}


async def queue_overview(services: Services) -> list[QueueView]:
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
    views = await queue_overview(current_services())
    return {"items": [queue_body(view) for view in views]}
