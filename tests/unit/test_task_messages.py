"""The task messages beat publishes: Celery protocol 2, slot headers, no arguments in reprs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from scheduling.broker.publisher import REDACTED, OutgoingRun, task_message

SLOT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run(**overrides: object) -> OutgoingRun:
    fields: dict[str, object] = {
        "task_id": "6b1f0f4e-0000-5000-8000-000000000001",
        "task": "scheduling.tasks.reports.send_run_report",
        "args": ["secret-token"],
        "kwargs": {"recipients": ["ops@example.com"]},
        "queue": "low",
        "entry": "daily-report",
        "scheduled_for": SLOT,
        "expires": SLOT + timedelta(hours=1),
    }
    fields.update(overrides)
    return OutgoingRun(**fields)  # type: ignore[arg-type]


def test_protocol_2_headers_and_body() -> None:
    message = task_message(run(), origin="beat@host")
    headers = message.headers
    assert headers["task"] == "scheduling.tasks.reports.send_run_report"
    assert headers["id"] == headers["root_id"] == "6b1f0f4e-0000-5000-8000-000000000001"
    assert headers["eta"] is None
    assert headers["retries"] == 0
    assert headers["expires"] == "2026-03-01T13:00:00+00:00"
    assert headers["periodic_entry"] == "daily-report"
    assert headers["periodic_slot"] == "2026-03-01T12:00:00Z"
    assert message.properties["correlation_id"] == headers["id"]
    assert message.properties["delivery_mode"] == 2
    assert message.properties["content_type"] == "application/json"
    args, kwargs, embed = json.loads(message.body)
    assert args == ["secret-token"]
    assert kwargs == {"recipients": ["ops@example.com"]}
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def test_arguments_never_appear_in_the_reprs() -> None:
    headers = task_message(run(), origin="beat@host").headers
    assert headers["argsrepr"] == REDACTED
    assert headers["kwargsrepr"] == REDACTED
    assert "secret-token" not in json.dumps(headers)
    empty = task_message(run(args=[], kwargs={}), origin="beat@host").headers
    assert (empty["argsrepr"], empty["kwargsrepr"]) == ("()", "{}")


def test_priority_and_no_expiry() -> None:
    message = task_message(run(priority=9, expires=None), origin="beat@host")
    assert message.properties["priority"] == 9
    assert message.headers["expires"] is None
