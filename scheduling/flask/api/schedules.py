"""``/api/v1/schedules``: list, create, read, redefine, delete, pause, resume, run now, preview,
and each entry's runs and history.

Each view does its blocking work (store, broker) in one `run_blocking` call: the event loop
only parses, dispatches and serialises. Run-now joins the process's run-now batch instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import g, request, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import EntryNotFound
from scheduling.flask.api.openapi import operation
from scheduling.flask.api.problems import ApiProblem
from scheduling.flask.api.schemas import (
    BackfillIn,
    BackfillOut,
    ExplainOut,
    ExplainQuery,
    HistoryList,
    NextOut,
    NextQuery,
    RunAccepted,
    RunList,
    RunsQuery,
    ScheduleIn,
    ScheduleList,
    ScheduleListQuery,
    ScheduleOut,
    SchedulePatch,
    ScheduleReplace,
    backfill_body,
    explain_body,
    history_body,
    iso,
    run_body,
    schedule_body,
)
from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking
from scheduling.flask.services import Services, current_services
from scheduling.operations import entries as operations
from scheduling.operations.backfill import backfill
from scheduling.operations.entries import FieldProblem, validation_problems
from scheduling.operations.explain import explain_slot
from scheduling.store import EntryRecord

__all__ = ["schedules"]

schedules = AsyncBlueprint("schedules", __name__)
TAG = "schedules"
Reply = ResponseReturnValue

Query = TypeVar("Query", bound=BaseModel)

_DEFINITION_FIELDS = frozenset(ScheduleEntry.model_fields)


def now() -> datetime:
    return datetime.now(UTC)


def api_actor() -> str:
    """Who the entry's history names for this request: the bearer token's name."""
    return f"token:{g.api_token}"


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a problem saying why it is not one.

    The body is bounded (``[api].max_body_size``, 413 before it is read) and parsed here, so a
    document nested too deeply for the parser is a 422 like any other malformed body.
    """
    if not request.is_json:
        raise ApiProblem(
            415, "Unsupported Media Type", "send the body as application/json", kind="media-type"
        )
    limit = current_services().settings.api.max_body_size
    request.max_content_length = limit
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise ApiProblem(
            413,
            "Content Too Large",
            f"the body is larger than {limit} bytes ([api].max_body_size); nothing was changed",
            kind="too-large",
        ) from None
    try:
        body = json.loads(data)
    except RecursionError:
        raise ApiProblem.invalid(
            [FieldProblem("", "the body nests too deeply")], "the body nests too deeply"
        ) from None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiProblem.invalid(
            [FieldProblem("", "the body must be a JSON object")],
            "the body is not a JSON object; nothing was changed",
        )
    return body


def parse_query(model: type[Query]) -> Query:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise ApiProblem.invalid(validation_problems(error), "invalid query parameters") from None


def definition_of(body: BaseModel) -> ScheduleEntry:
    fields = body.model_dump(include=set(_DEFINITION_FIELDS), exclude_unset=True)
    return ScheduleEntry.model_validate(fields)


def view_of(services: Services, record: EntryRecord) -> dict[str, Any]:
    view = operations.entry_view(services.store, services.settings, record, now())
    return schedule_body(view)


def load_view(services: Services, name: str) -> dict[str, Any]:
    return schedule_body(operations.load_entry_view(services.store, services.settings, name, now()))


@schedules.get("/schedules")
@operation(
    "listSchedules",
    "Entries by name, one page at a time",
    tag=TAG,
    query=ScheduleListQuery,
    responses={200: ScheduleList},
)
async def list_schedules() -> Reply:
    query = parse_query(ScheduleListQuery)
    services = current_services()

    def page() -> dict[str, Any]:
        records, cursor = operations.list_entries(
            services.store,
            services.settings,
            after=query.after,
            limit=query.limit,
            source=query.source,
            enabled=query.enabled,
            queue=query.queue,
        )
        views = operations.entry_views(services.store, services.settings, records, now())
        return {"items": [schedule_body(view) for view in views], "next": cursor}

    return await run_blocking(page)


@schedules.post("/schedules")
@operation(
    "createSchedule",
    "Create an API-owned entry",
    tag=TAG,
    body=ScheduleIn,
    responses={201: ScheduleOut},
    errors=(409,),
)
async def create_schedule() -> Reply:
    body = ScheduleIn.model_validate(json_object())
    definition = definition_of(body)
    services = current_services()
    actor = api_actor()

    def create() -> dict[str, Any]:
        record = operations.create_entry(
            services.store,
            services.settings,
            services.registry,
            body.name,
            definition,
            now(),
            actor,
        )
        return view_of(services, record)

    created = await run_blocking(create)
    location = url_for("periodic_api.schedules.get_schedule", name=body.name)
    return created, 201, {"Location": location}


@schedules.get("/schedules/<name>")
@operation(
    "getSchedule",
    "One entry: definition, source, next and last run, lateness",
    tag=TAG,
    responses={200: ScheduleOut},
    errors=(404,),
)
async def get_schedule(name: str) -> Reply:
    return await run_blocking(load_view, current_services(), name)


@schedules.put("/schedules/<name>")
@operation(
    "replaceSchedule",
    "Redefine an API-owned entry (or create it)",
    tag=TAG,
    body=ScheduleReplace,
    responses={200: ScheduleOut, 201: ScheduleOut},
    errors=(409,),
    description="Entries declared in settings.toml answer 409: change them in the file.",
)
async def replace_schedule(name: str) -> Reply:
    body = ScheduleReplace.model_validate(json_object())
    if body.name is not None and body.name != name:
        raise ApiProblem.invalid([FieldProblem("name", f"must match the path ({name!r})")])
    definition = definition_of(body)
    services = current_services()
    actor = api_actor()

    def put() -> tuple[dict[str, Any], bool]:
        record, created = operations.put_entry(
            services.store, services.settings, services.registry, name, definition, now(), actor
        )
        return view_of(services, record), created

    view, created = await run_blocking(put)
    return view, 201 if created else 200


@schedules.patch("/schedules/<name>")
@operation(
    "patchSchedule",
    "Change some fields of an API-owned entry (JSON merge patch)",
    tag=TAG,
    body=SchedulePatch,
    responses={200: ScheduleOut},
    errors=(404, 409),
)
async def patch_schedule(name: str) -> Reply:
    raw = json_object()
    patch = SchedulePatch.model_validate(raw)
    changes = {key: value for key, value in raw.items() if key in patch.model_fields_set}
    changes.pop("status", None)
    services = current_services()
    actor = api_actor()

    def apply() -> dict[str, Any]:
        record = services.store.get_entry(name)
        if record is None:
            raise EntryNotFound(f"no schedule entry named {name!r}")
        definition = operations.patched_definition(record.definition, changes)
        updated = operations.replace_entry(
            services.store, services.settings, services.registry, name, definition, now(), actor
        )
        return view_of(services, updated)

    return await run_blocking(apply)


@schedules.delete("/schedules/<name>")
@operation(
    "deleteSchedule",
    "Delete an API-owned entry (its run history stays)",
    tag=TAG,
    responses={204: None},
    errors=(404, 409),
)
async def delete_schedule(name: str) -> Reply:
    services = current_services()
    await run_blocking(operations.delete_entry, services.store, name, api_actor())
    return "", 204


@schedules.post("/schedules/<name>/pause")
@operation(
    "pauseSchedule",
    "Stop dispatching an entry (any owner)",
    tag=TAG,
    responses={200: ScheduleOut},
    errors=(404,),
)
async def pause_schedule(name: str) -> Reply:
    services = current_services()
    actor = api_actor()

    def pause() -> dict[str, Any]:
        return view_of(services, operations.pause_entry(services.store, name, actor))

    return await run_blocking(pause)


@schedules.post("/schedules/<name>/resume")
@operation(
    "resumeSchedule",
    "Resume an entry from its next slot after now (no burst for the paused time)",
    tag=TAG,
    responses={200: ScheduleOut},
    errors=(404,),
)
async def resume_schedule(name: str) -> Reply:
    services = current_services()
    actor = api_actor()

    def resume() -> dict[str, Any]:
        record = operations.resume_entry(services.store, services.settings, name, now(), actor)
        return view_of(services, record)

    return await run_blocking(resume)


@schedules.post("/schedules/<name>/run")
@operation(
    "runSchedule",
    "Run an entry now; 202 once the broker confirmed the message",
    tag=TAG,
    responses={202: RunAccepted},
    errors=(404,),
    description="503 (within 2 s) when the broker does not confirm; then nothing was started.",
)
async def run_schedule(name: str) -> Reply:
    # Joins this process's next run-now batch (one claim, one confirmed publish, one mark and
    # history write for all requests in flight). Blocking on purpose: this thread's loop serves
    # this one request, and the thread may be the batch's leader (no hand-off to a pool).
    run = current_services().run_now(name, api_actor())
    location = url_for("periodic_api.runs.get_run", task_id=run.task_id)
    return {"task_id": run.task_id, "run": location}, 202, {"Location": location}


@schedules.get("/schedules/<name>/next")
@operation(
    "nextFireTimes",
    "Preview the next fire times, in UTC and in the entry's zone",
    tag=TAG,
    query=NextQuery,
    responses={200: NextOut},
    errors=(404,),
)
async def schedule_fire_times(name: str) -> Reply:
    query = parse_query(NextQuery)
    services = current_services()
    start = query.after.astimezone(UTC) if query.after else now()
    zone, times = await run_blocking(
        operations.next_fire_times, services.store, services.settings, name, start, query.count
    )
    return {
        "name": name,
        "timezone": zone,
        "fire_times": [iso(t) for t in times],
        "fire_times_local": [iso(t.astimezone(ZoneInfo(zone))) for t in times],
    }


@schedules.get("/schedules/<name>/runs")
@operation(
    "listScheduleRuns",
    "Runs of an entry, newest first",
    tag=TAG,
    query=RunsQuery,
    responses={200: RunList},
    errors=(404,),
)
async def list_schedule_runs(name: str) -> Reply:
    query = parse_query(RunsQuery)
    services = current_services()

    def page() -> dict[str, Any]:
        store = services.store
        runs = store.runs_for_entry(name, before_id=query.before, limit=query.limit + 1)
        if not runs and store.get_entry(name) is None:
            raise EntryNotFound(f"no schedule entry named {name!r}")
        more = len(runs) > query.limit
        runs = runs[: query.limit]
        return {"items": [run_body(r) for r in runs], "next": runs[-1].id if more else None}

    return await run_blocking(page)


@schedules.get("/schedules/<name>/history")
@operation(
    "listScheduleHistory",
    "Who created, changed, paused, resumed, ran or deleted an entry, newest first",
    tag=TAG,
    query=RunsQuery,
    responses={200: HistoryList},
    errors=(404,),
    description="A deleted entry keeps its history; settings.toml syncs appear as settings:<path>.",
)
async def list_schedule_history(name: str) -> Reply:
    query = parse_query(RunsQuery)
    services = current_services()

    def page() -> dict[str, Any]:
        records, cursor = operations.entry_history(
            services.store, name, before_id=query.before, limit=query.limit
        )
        return {"items": [history_body(record) for record in records], "next": cursor}

    return await run_blocking(page)


@schedules.post("/schedules/<name>/backfill")
@operation(
    "backfillSchedule",
    "Run the past slots of a window that never ran, each exactly once",
    tag=TAG,
    body=BackfillIn,
    responses={200: BackfillOut, 202: BackfillOut},
    errors=(404,),
    description=(
        "Slots with no run in the ledger, or recorded as missed, are dispatched (202); the rest"
        " are skipped, so repeating a backfill is harmless. `dry_run` lists them (200). A window"
        " holding more than [beat].max_backfill slots, ending in the future or backwards is a"
        " 422."
    ),
)
async def backfill_schedule(name: str) -> Reply:
    body = BackfillIn.model_validate(json_object())
    services = current_services()
    actor = api_actor()

    def run() -> dict[str, Any]:
        report = backfill(
            services.store,
            services.publisher,
            services.settings,
            name,
            body.start,
            body.end,
            now=now(),
            dry_run=body.dry_run,
            actor=actor,
        )
        return backfill_body(report)

    result = await run_blocking(run)
    return result, 200 if body.dry_run else 202


@schedules.get("/schedules/<name>/explain")
@operation(
    "explainSchedule",
    "Why did it (not) run? What happened to the slot at or before an instant, and why",
    tag=TAG,
    query=ExplainQuery,
    responses={200: ExplainOut},
    errors=(404,),
    description=(
        "Built from the run ledger, the entry's history and the leadership terms. A deleted"
        " entry answers `deleted`; a name never seen, 404."
    ),
)
async def explain_schedule(name: str) -> Reply:
    query = parse_query(ExplainQuery)
    services = current_services()
    moment = now()
    at = query.at.astimezone(UTC) if query.at else moment

    def answer() -> dict[str, Any]:
        return explain_body(explain_slot(services.store, services.settings, name, at, moment))

    return await run_blocking(answer)
