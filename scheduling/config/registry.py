"""Checking a schedule against the real task registry.

Only registered Celery tasks can be scheduled, and arguments must bind to the task's signature:
a typo in a task name or a missing argument is caught by `schedule check`, at beat start and on
every API write, never discovered by a silent failure at 8 AM. `registry` is anything that maps
task names to Celery tasks (``celery_app.tasks``) or plain callables, so this module needs no app.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.errors import ScheduleValidationError


def unknown_task_problem(name: str, task: str, registry: Mapping[str, Any]) -> str | None:
    """The problem of entry `name` naming `task`, if no such task is registered, with the one
    closest registered name as a suggestion (a list of near misses reads as a shrug)."""
    if task in registry:
        return None
    candidates = [
        known for known in registry if not known.startswith("celery.") or task.startswith("celery.")
    ]
    close = difflib.get_close_matches(task, candidates, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"schedule.{name}.task: {task!r} is not a registered Celery task{hint}"


def document_task_problems(document: Mapping[str, Any], registry: Mapping[str, Any]) -> list[str]:
    """Unknown task names in a parsed settings document that did not validate as a whole, so a
    file with a typo in a task and a bad cron reports both at once."""
    tables = document.get("schedule")
    if not isinstance(tables, Mapping):
        return []
    problems = []
    for name, table in tables.items():
        task = table.get("task") if isinstance(table, Mapping) else None
        if isinstance(task, str) and task:
            problem = unknown_task_problem(str(name), task, registry)
            if problem is not None:
                problems.append(problem)
    return problems


def entry_task_problems(name: str, entry: ScheduleEntry, registry: Mapping[str, Any]) -> list[str]:
    """Problems of one entry: unknown task (with the closest name), or unbindable arguments."""
    task = registry.get(entry.task)
    if task is None:
        problem = unknown_task_problem(name, entry.task, registry)
        return [problem] if problem else []
    try:
        signature = inspect.signature(getattr(task, "run", task))
    except (TypeError, ValueError):
        return []
    try:
        signature.bind(*entry.args, **entry.kwargs)
    except TypeError as error:
        field = _blamed_field(str(error), entry)
        return [f"schedule.{name}.{field}: arguments do not match {entry.task}{signature}: {error}"]
    return []


def registry_problems(settings: Settings, registry: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for name, entry in settings.schedule.items():
        problems.extend(entry_task_problems(name, entry, registry))
    return problems


def validate_against_registry(settings: Settings, registry: Mapping[str, Any], source: str) -> None:
    """Raise `ScheduleValidationError` naming every entry that cannot run."""
    problems = registry_problems(settings, registry)
    if problems:
        raise ScheduleValidationError(source, problems)


def _blamed_field(message: str, entry: ScheduleEntry) -> str:
    if "positional" in message:
        return "args"
    if "keyword" in message or "multiple values" in message:
        return "kwargs"
    return "kwargs" if entry.kwargs or not entry.args else "args"
