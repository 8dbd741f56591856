"""Outage tracking: capped exponential backoff, one log line per state change."""

from __future__ import annotations

import logging

import pytest

from scheduling.beat.outage import Outage


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    outage = Outage("broker", logging.getLogger("test.outage"), clock=clock)
    delays = [outage.failed(ConnectionError("refused")) for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert outage.down
    assert not outage.ready()
    clock.now += 10
    assert outage.ready()


def test_logs_once_when_it_goes_down_and_once_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    outage = Outage("broker", logging.getLogger("test.outage"), clock=clock)
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(5):
            outage.failed(ConnectionError("refused"))
        clock.now += 20
        outage.succeeded()
        outage.succeeded()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        "broker unreachable: refused; retrying with backoff",
        "broker back after 20.0s",
    ]
    assert not outage.down
    assert outage.wait() == 0.0


def test_down_and_back_hooks_run_once_per_outage() -> None:
    events: list[str] = []
    outage = Outage(
        "broker",
        logging.getLogger("test.outage"),
        clock=lambda: 0.0,
        on_down=lambda: events.append("down"),
        on_back=lambda: events.append("back"),
    )
    outage.succeeded()
    outage.failed(RuntimeError("x"))
    outage.failed(RuntimeError("x"))
    outage.succeeded()
    outage.succeeded()

    assert events == ["down", "back"]
