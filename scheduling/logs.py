"""Log lines for log shippers: ``[app].log_format = "json"`` (web, worker and beat).

One JSON object per line, formatted by python-json-logger, with a fixed set of keys: ``time``
(UTC, ISO-8601 with ``Z``), ``level``, ``logger``, ``message``, ``exc_info`` for exceptions and,
where known, ``entry``, ``slot``, ``task_id`` and ``task``. Only these keys are written, never
the record's other attributes: a ``logger.info(..., extra={...})`` elsewhere cannot leak task
arguments or secrets into the shipped log. In a worker the task fields come from the task being
run (its message headers name the entry and slot); elsewhere from ``extra={"entry": ...}``.

``text`` leaves logging exactly as Flask, gunicorn and Celery set it up. The format is switched
where each process reads its settings (the Flask extension; Celery's ``after_setup_logger``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from celery import current_task
from pythonjsonlogger.json import JsonFormatter

__all__ = ["CONTEXT_FIELDS", "JsonLineFormatter", "RunContext", "use_json_logs"]

CONTEXT_FIELDS = ("entry", "slot", "task_id", "task")


class RunContext(logging.Filter):
    """Adds the running Celery task's id, name, entry and slot to records that lack them."""

    def filter(self, record: logging.LogRecord) -> bool:
        task: Any = current_task
        request = getattr(task, "request", None) if task else None
        task_id = getattr(request, "id", None) if request is not None else None
        if task_id is None:
            return True
        context = {
            "task_id": task_id,
            "task": getattr(task, "name", None),
            "entry": getattr(request, "periodic_entry", None),
            "slot": getattr(request, "periodic_slot", None),
        }
        for key, value in context.items():
            if value is not None and getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class JsonLineFormatter(JsonFormatter):
    """The fixed keys of the module docstring, nothing else from the record."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        created = datetime.fromtimestamp(record.created, UTC)
        log_data["time"] = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage()
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                log_data[key] = str(value)
        for key in ("exc_info", "stack_info"):
            if message_dict.get(key):
                log_data[key] = message_dict[key]


def use_json_logs(handlers: Iterable[logging.Handler]) -> None:
    """Give each handler the JSON line format and the task context (idempotent)."""
    for handler in handlers:
        if not isinstance(handler.formatter, JsonLineFormatter):
            handler.setFormatter(JsonLineFormatter())
        if not any(isinstance(f, RunContext) for f in handler.filters):
            handler.addFilter(RunContext())
