"""Waiting for a condition with a deadline: the one poll loop of the test suites (never a fixed
sleep where a condition can be awaited)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_for"]


def wait_for(
    condition: Callable[[], object],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    interval: float = 0.005,
) -> float:
    """Seconds until `condition()` was true; fails the test after `timeout` seconds.

    `interval` is the pause between tries: keep it short for cheap checks (latencies are measured
    with it), longer for checks that query a store or a broker.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)
    return time.monotonic() - started
