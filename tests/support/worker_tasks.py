"""Test-only tasks, registered in real workers with
``celery worker --include tests.support.worker_tasks``.

They leave traces in files named by the test (one line per event), so a test can tell how many
times a body started or finished in whichever process ran it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from scheduling.errors import TransientError


def _note(path: str, event: str) -> int:
    """Append `event` to the trace file; return how many lines it has now."""
    with Path(path).open("a", encoding="utf-8") as trace:
        trace.write(f"{event} {os.getpid()} {time.time():.6f}\n")
    return len(Path(path).read_text(encoding="utf-8").splitlines())


@shared_task(name="tests.support.worker_tasks.sleep_then_mark")
def sleep_then_mark(path: str, seconds: float) -> str:
    _note(path, "start")
    time.sleep(seconds)
    _note(path, "done")
    return "done"


@shared_task(name="tests.support.worker_tasks.write_headers")
def write_headers(path: str, headers: dict[str, str]) -> None:
    """What the task body received (a resolved secret), for the secrets test to read."""
    Path(path).write_text(json.dumps(headers), encoding="utf-8")


@shared_task(name="tests.support.worker_tasks.sleep")
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@shared_task(name="tests.support.worker_tasks.fail_with")
def fail_with(path: str, secret: str) -> None:
    _note(path, "start")
    raise ValueError("the report could not be built")


@shared_task(name="tests.support.worker_tasks.fail_showing")
def fail_showing(token: str, transient: bool) -> None:
    """A body that puts the secret it was given into its exception (and the cause's)."""
    try:
        raise LookupError(f"no account for {token}")
    except LookupError as cause:
        if transient:
            raise TransientError(f"the service said 503 to {token}") from cause
        raise ValueError(f"the service said 401 to {token}") from cause


@shared_task(name="tests.support.worker_tasks.flaky")
def flaky(path: str, failures: int) -> str:
    """Fail transiently `failures` times, then succeed."""
    attempt = _note(path, "start")
    if attempt <= failures:
        raise TransientError(f"attempt {attempt}: the service is busy")
    return "ok"


@shared_task(name="tests.support.worker_tasks.kill_own_process")
def kill_own_process(path: str) -> None:
    """A poison message: the process running it dies, every time."""
    _note(path, "start")
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task(name="tests.support.worker_tasks.overstay")
def overstay(path: str, seconds: float) -> None:
    """Ignore the soft time limit and keep going, so only the hard limit stops it."""
    _note(path, "start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            _note(path, "soft-limit")


@shared_task(name="tests.support.worker_tasks.respect_soft_limit")
def respect_soft_limit(path: str, seconds: float) -> None:
    _note(path, "start")
    time.sleep(seconds)
