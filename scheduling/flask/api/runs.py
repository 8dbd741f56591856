"""``/api/v1/runs/{task_id}``: one run from the ledger, whoever started it."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from scheduling.flask.api.openapi import operation
from scheduling.flask.api.problems import ApiProblem
from scheduling.flask.api.schemas import RunOut, run_body
from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking
from scheduling.flask.services import current_services

__all__ = ["runs"]

runs = AsyncBlueprint("runs", __name__)


@runs.get("/runs/<task_id>")
@operation(
    "getRun",
    "A run: entry, slot, state, timings, error",
    tag="runs",
    responses={200: RunOut},
    errors=(404,),
)
async def get_run(task_id: str) -> ResponseReturnValue:
    run = await run_blocking(current_services().store.get_run, task_id)
    if run is None:
        raise ApiProblem(404, "Not found", f"no run with task id {task_id!r}", kind="not-found")
    return run_body(run)
