"""Creating, editing, cloning and deleting API-owned entries from the dashboard.

The form posts back to itself: "Preview" shows the schedule in words and its next fire times
(in the entry's zone and in UTC) without storing anything, "Save" validates exactly as
``POST /api/v1/schedules`` does (same model, same `operations` calls) and either stores the
entry or shows each problem beside its field, storing nothing. With JavaScript the preview also
updates as the fields change (``GET /preview.json``); without it the button does the same.
Entries declared in settings.toml are read-only here: they change in the file.

Its own blueprint, sharing the dashboard's sign-in, CSRF check and security headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import (
    ConfigOwnedEntry,
    EntryExists,
    EntryNotFound,
    FieldProblem,
    InvalidEntry,
    StoreError,
)
from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking
from scheduling.flask.dashboard.display import local_time
from scheduling.flask.dashboard.forms import (
    FORM_FIELDS,
    FormResult,
    Preview,
    add_problem,
    form_values,
    parse_form,
    preview,
)
from scheduling.flask.dashboard.views import (
    actor,
    guard,
    may_act,
    problem_page,
    protect,
    signed_in_user,
)
from scheduling.flask.services import current_services
from scheduling.operations import entries as operations
from scheduling.operations.entries import utc_now

__all__ = ["editor"]

logger = logging.getLogger(__name__)

editor = AsyncBlueprint("periodic_editor", __name__, template_folder="../templates")
editor.before_request(guard)
editor.after_request(protect)


def _render(
    *,
    mode: str,
    values: Mapping[str, str],
    problems: Mapping[str, list[str]] | None = None,
    shown: Preview | None = None,
    status: int = 200,
    name: str = "",
) -> ResponseReturnValue:
    services = current_services()
    return (
        render_template(
            "entry_form.html",
            mode=mode,
            name=name,
            values=values,
            problems=problems or {},
            preview=shown,
            queues=list(services.settings.queues),
            user=signed_in_user(),
            now=utc_now(),
        ),
        status,
    )


def _form() -> dict[str, str]:
    return {field: request.form.get(field, "") for field in FORM_FIELDS}


def _preview_of(result: FormResult) -> Preview | None:
    if result.definition is None:
        return None
    try:
        return preview(result.definition, current_services().settings, utc_now())
    except (KeyError, ValueError):
        return None


def _form_again(
    mode: str, values: dict[str, str], result: FormResult, name: str = ""
) -> ResponseReturnValue:
    """The form page again, for a post that asks for a preview or has problems."""
    return _render(
        mode=mode,
        name=name,
        values=values,
        problems=result.problems,
        shown=_preview_of(result),
        status=422 if result.problems else 200,
    )


async def _write(
    write: Callable[..., object], name: str, definition: ScheduleEntry, who: str
) -> dict[str, list[str]]:
    """`write` (create or replace) through the operations; the problems to show (none: saved).

    Refusals that are no field's problem (not found, declared in settings.toml, a name taken)
    are raised for the view to answer.
    """
    services = current_services()
    problems: dict[str, list[str]] = {}
    try:
        await run_blocking(
            write,
            services.store,
            services.settings,
            services.registry,
            name,
            definition,
            utc_now(),
            who,
        )
    except InvalidEntry as error:
        for problem in error.problems:
            add_problem(problems, problem)
    except StoreError:
        add_problem(problems, FieldProblem("", "The store cannot be reached; nothing was saved."))
    return problems


@editor.get("/new")
async def new_entry() -> ResponseReturnValue:
    refused = may_act()
    if refused is not None:
        return refused
    source = request.args.get("clone", "").strip()
    if not source:
        return _render(mode="create", values=form_values(None))
    record = await run_blocking(current_services().store.get_entry, source)
    if record is None:
        flash(f"There is no entry named {source!r} to clone.", "error")
        return _render(mode="create", values=form_values(None))
    return _render(mode="create", values=form_values(record.definition, f"{source}-copy"))


@editor.post("/new")
async def save_new_entry() -> ResponseReturnValue:
    refused = may_act()
    if refused is not None:
        return refused
    values = _form()
    result = parse_form(values)
    if request.form.get("action") == "preview" or result.definition is None:
        return _form_again("create", values, result)
    who = actor()
    try:
        problems = await _write(operations.create_entry, result.name, result.definition, who)
    except EntryExists as error:
        problems = {}
        add_problem(problems, FieldProblem("name", str(error)))
    if problems:
        return _render(mode="create", values=values, problems=problems, status=422)
    logger.info("dashboard: %s created %s", who, result.name)
    flash(f"Created {result.name}.", "ok")
    return redirect(url_for("periodic.entry", name=result.name))


@editor.get("/entries/<name>/edit")
async def edit_entry(name: str) -> ResponseReturnValue:
    refused = may_act()
    if refused is not None:
        return refused
    record = await run_blocking(current_services().store.get_entry, name)
    if record is None:
        return _missing(name)
    if record.owner == "config":
        flash(f"{name} is declared in settings.toml; change it there.", "error")
        return redirect(url_for("periodic.entry", name=name))
    return _render(mode="edit", name=name, values=form_values(record.definition, name))


@editor.post("/entries/<name>/edit")
async def update_entry(name: str) -> ResponseReturnValue:
    refused = may_act()
    if refused is not None:
        return refused
    values = {**_form(), "name": name}
    result = parse_form(values)
    if request.form.get("action") == "preview" or result.definition is None:
        return _form_again("edit", values, result, name)
    who = actor()
    try:
        problems = await _write(operations.replace_entry, name, result.definition, who)
    except EntryNotFound:
        return _missing(name)
    except ConfigOwnedEntry:
        flash(f"{name} is declared in settings.toml; change it there.", "error")
        return redirect(url_for("periodic.entry", name=name))
    if problems:
        return _render(mode="edit", name=name, values=values, problems=problems, status=422)
    logger.info("dashboard: %s changed %s", who, name)
    flash(f"Saved {name}.", "ok")
    return redirect(url_for("periodic.entry", name=name))


@editor.post("/entries/<name>/delete")
async def delete_api_entry(name: str) -> ResponseReturnValue:
    refused = may_act()
    if refused is not None:
        return refused
    who = actor()
    try:
        await run_blocking(operations.delete_entry, current_services().store, name, who)
    except EntryNotFound:
        flash(f"There is no entry named {name!r} any more.", "error")
    except ConfigOwnedEntry:
        flash(f"{name} is declared in settings.toml; remove it there.", "error")
        return redirect(url_for("periodic.entry", name=name))
    except StoreError:
        flash(f"{name} was not deleted: the store cannot be reached.", "error")
        return redirect(url_for("periodic.entry", name=name))
    else:
        logger.info("dashboard: %s deleted %s", who, name)
        flash(f"Deleted {name}; its runs and history are kept.", "ok")
    return redirect(url_for("periodic.index"))


@editor.get("/preview.json")
async def preview_json() -> ResponseReturnValue:
    """The live preview for the form's script: words and fire times, or the problems."""
    result = parse_form({field: request.args.get(field, "") for field in FORM_FIELDS})
    shown = _preview_of(result)
    body: dict[str, Any] = {"problems": result.problems}
    if shown is not None:
        body.update(
            words=shown.words,
            zone=shown.zone,
            times=[
                {"local": local_time(time, shown.zone), "utc": local_time(time, "UTC")}
                for time in shown.times
            ],
        )
    return body


def _missing(name: str) -> ResponseReturnValue:
    return problem_page(
        404,
        "No such entry",
        f"There is no schedule entry named {name!r}.",
        "It may have been removed from settings.toml or deleted through the API.",
    )
