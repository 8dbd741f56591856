"""The task messages beat publishes: Celery protocol 2, slot headers, no arguments in reprs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from scheduling.broker.publisher import (
    EVENT_EXCHANGE,
    REDACTED,
    OutgoingRun,
    TaskFrames,
    sent_event,
    task_message,
)

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


class _Capture:
    """A transport and connection stand-in for py-amqp's frame writer: keeps what it writes."""

    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self.bytes_sent = 0
        self.written = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self.written += data


def amqp_frames(message: amqp.Message, exchange: str, routing_key: str, *, mandatory: bool,
                frame_max: int = 131072) -> bytes:  # fmt: skip
    """What py-amqp writes for ``basic_publish(message, ...)`` on channel 1."""
    capture = _Capture(frame_max)
    write = frame_writer(capture, capture)
    args = (0, exchange, routing_key, mandatory, False)
    write(1, 1, spec.Basic.Publish, dumps("Bssbb", args), message)
    return bytes(capture.written)


SHAPES: list[dict[str, object]] = [
    {},
    {"args": [], "kwargs": {}},
    {"priority": 0, "expires": None},
    {"priority": 9, "entry": "ünïcode-entry", "kwargs": {"n": 2**40, "ok": True, "x": 1.5}},
    {"args": ["x" * 300_000]},  # a body split over several frames
    {"task": "tâche.ünïcode", "queue": "q-ü"},
]


@pytest.mark.parametrize("overrides", SHAPES)
def test_encoded_frames_are_what_py_amqp_writes(overrides: dict[str, object]) -> None:
    frames = TaskFrames("beat@host", "periodic")
    message = run(**overrides)
    expected = amqp_frames(
        task_message(message, "beat@host"), "periodic", message.queue, mandatory=True
    )
    assert frames.task(message, 1, 131072) == expected


@pytest.mark.parametrize("overrides", SHAPES)
def test_encoded_events_are_what_py_amqp_writes(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object]
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.123456)
    frames = TaskFrames("beat@höst", "periodic")
    message = run(**overrides)
    expected = amqp_frames(
        sent_event(message, "beat@höst", "periodic", 7),
        EVENT_EXCHANGE,
        "task.sent",
        mandatory=False,
    )
    assert frames.event(message, 7, 1, 131072) == expected
