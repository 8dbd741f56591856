"""`[app].log_format = "json"`: one JSON object per line, fixed keys, never extra attributes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery._state import _task_stack

from project.app import create_app
from scheduling.config.settings import Settings
from scheduling.logs import JsonLineFormatter, RunContext, use_json_logs


@pytest.fixture(autouse=True)
def root_handlers() -> Iterator[None]:
    """Whatever a test does to the root logger is undone after it."""
    root = logging.getLogger()
    saved = list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in saved:
            root.removeHandler(handler)


def line_of(logger: logging.Logger, emit: Any) -> dict[str, Any]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    use_json_logs([handler])
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit()
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    parsed = json.loads(lines[0])
    assert isinstance(parsed, dict)
    return parsed


def test_a_line_has_time_level_logger_message_and_entry_but_no_extra_attributes() -> None:
    logger = logging.getLogger("test.json.plain")
    line = line_of(
        logger,
        lambda: logger.warning(
            "entry %r is late", "ping", extra={"entry": "ping", "kwargs": {"password": "hunter2"}}
        ),
    )
    assert set(line) == {"time", "level", "logger", "message", "entry"}
    assert line["level"] == "WARNING"
    assert line["logger"] == "test.json.plain"
    assert line["message"] == "entry 'ping' is late"
    assert line["entry"] == "ping"
    assert line["time"].endswith("Z")
    assert "hunter2" not in json.dumps(line)


def test_an_exception_is_one_line_too() -> None:
    logger = logging.getLogger("test.json.error")

    def emit() -> None:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("tick failed")

    line = line_of(logger, emit)
    assert line["message"] == "tick failed"
    assert "RuntimeError: boom" in line["exc_info"]


def test_inside_a_task_the_task_entry_and_slot_are_added() -> None:
    app = Celery("json-logs", set_as_current=False)

    @app.task(name="acme.ping")
    def ping() -> None:
        pass

    logger = logging.getLogger("test.json.task")
    ping.push_request(id="task-1", periodic_entry="ping", periodic_slot="2026-11-27T08:00:00Z")
    _task_stack.push(ping)
    try:
        line = line_of(logger, lambda: logger.info("working"))
    finally:
        _task_stack.pop()
        ping.pop_request()
    assert line["task_id"] == "task-1"
    assert line["task"] == "acme.ping"
    assert line["entry"] == "ping"
    assert line["slot"] == "2026-11-27T08:00:00Z"


def test_outside_a_task_the_context_filter_adds_nothing() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert RunContext().filter(record)
    assert not hasattr(record, "task_id")


def test_the_web_process_logs_json_when_the_settings_say_so(tmp_path: Path) -> None:
    settings = Settings(
        app={"log_format": "json", "database_url": f"sqlite:///{tmp_path / 'p.db'}"},
        beat={"scheduler": "static"},
    )
    app = create_app(settings)
    root = logging.getLogger()
    assert root.handlers
    assert all(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers)
    assert all(isinstance(h.formatter, JsonLineFormatter) for h in app.logger.handlers)


def test_text_stays_as_it_was(tmp_path: Path) -> None:
    before = list(logging.getLogger().handlers)
    settings = Settings(
        app={"database_url": f"sqlite:///{tmp_path / 'p.db'}"}, beat={"scheduler": "static"}
    )
    create_app(settings)
    assert logging.getLogger().handlers == before
