"""``/api/v1/runs/{task_id}``: one run from the ledger, whoever started it."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from project.api.openapi import operation
from project.api.problems import ApiProblem
from project.api.schemas import RunOut, run_body
from project.asyncio_bridge import run_blocking
from project.extension import periodic

__all__ = ["runs"]

runs = Blueprint("runs", __name__)


@runs.get("/runs/<task_id>")
@operation(
    "getRun",
    "A run: entry, slot, state, timings, error",
    tag="runs",
    responses={200: RunOut},
    errors=(404,),
)
async def get_run(task_id: str) -> ResponseReturnValue:
    run = await run_blocking(periodic().store.get_run, task_id)
    if run is None:
        raise ApiProblem(404, "Not found", f"no run with task id {task_id!r}", kind="not-found")
    return run_body(run)
