"""The entry form: HTML form fields to a definition and back, and the schedule preview.

Pure functions. A submitted form becomes the same JSON-shaped dict a `POST /schedules` body
would be (empty fields left out, ``args``/``kwargs`` parsed as JSON, the checkbox as a bool),
and is validated by the same `ScheduleEntry` model and `operations.check_entry` as the API, so
the dashboard cannot accept what the API would refuse. Problems come back keyed by field, to be
shown beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from scheduling.config.compiler import entry_timetable
from scheduling.config.durations import format_duration
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.errors import FieldProblem
from scheduling.operations.entries import validation_problems

__all__ = [
    "FORM_FIELDS",
    "FormResult",
    "Preview",
    "form_values",
    "parse_form",
    "preview",
]

TEXT_FIELDS = (
    "task",
    "every",
    "cron",
    "at",
    "solar",
    "latitude",
    "longitude",
    "timezone",
    "queue",
    "catchup",
    "misfire_grace",
    "overlap",
    "jitter",
    "expires",
    "start",
    "end",
    "max_runs",
    "description",
)
JSON_FIELDS = ("args", "kwargs")
FORM_FIELDS = ("name", *TEXT_FIELDS, *JSON_FIELDS, "enabled")
PREVIEW_COUNT = 5


@dataclass(frozen=True)
class FormResult:
    """A parsed form: the definition when it validates, else the problems by field."""

    name: str
    definition: ScheduleEntry | None
    problems: dict[str, list[str]]


@dataclass(frozen=True)
class Preview:
    words: str
    zone: str
    times: list[datetime]


def parse_form(form: Mapping[str, str]) -> FormResult:
    """The submitted fields as a definition, validated like an API body."""
    name = form.get("name", "").strip()
    body: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for field in TEXT_FIELDS:
        value = form.get(field, "").strip()
        if value:
            body[field] = value
    for field in JSON_FIELDS:
        value = form.get(field, "").strip()
        if not value:
            continue
        try:
            body[field] = json.loads(value)
        except json.JSONDecodeError as error:
            problems.setdefault(field, []).append(f"not JSON: {error.msg} (column {error.colno})")
    body["enabled"] = form.get("enabled") in {"on", "true", "1"}
    try:
        definition = ScheduleEntry.model_validate(body)
    except ValidationError as error:
        for problem in validation_problems(error):
            add_problem(problems, problem)
        return FormResult(name, None, problems)
    return FormResult(name, None if problems else definition, problems)


def add_problem(problems: dict[str, list[str]], problem: FieldProblem) -> None:
    """File a problem under its top-level field ("" for the form as a whole)."""
    field = problem.path.split(".", 1)[0]
    problems.setdefault(field, []).append(problem.message)


def form_values(definition: ScheduleEntry | None, name: str = "") -> dict[str, str]:
    """What the form shows for a stored definition (a new entry: the defaults)."""
    if definition is None:
        return {"name": name, "catchup": "latest", "overlap": "allow", "enabled": "on"}
    dumped = definition.model_dump(mode="json", exclude_defaults=True)
    values = {"name": name, "catchup": definition.catchup, "overlap": definition.overlap}
    for field in TEXT_FIELDS:
        if field in dumped and field not in {"catchup", "overlap"}:
            values[field] = str(dumped[field])
    for field in JSON_FIELDS:
        if field in dumped:
            values[field] = json.dumps(dumped[field])
    if isinstance(definition.expires, str) and definition.expires != "auto":
        values["expires"] = definition.expires
    elif not isinstance(definition.expires, str):
        values["expires"] = format_duration(definition.expires)
    if definition.enabled:
        values["enabled"] = "on"
    return values


def preview(definition: ScheduleEntry, settings: Settings, now: datetime) -> Preview:
    """The schedule in words and its next fire times after `now`."""
    timetable = entry_timetable(definition, settings)
    return Preview(
        timetable.describe(), timetable.zone.key, timetable.fire_times(now, PREVIEW_COUNT)
    )
