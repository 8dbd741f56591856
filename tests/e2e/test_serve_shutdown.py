"""``nox -s serve`` leaves nothing behind: Ctrl-C, SIGTERM or a crashed child stop every process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.stack import descendants, running_serve, survivors

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _await_no_survivors(
    tracked: set[tuple[int, str]], timeout: float = 10.0
) -> set[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while (left := survivors(tracked)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_every_child_and_exits_zero(
    signum: signal.Signals, broker_url: str, tmp_path: Path
) -> None:
    with running_serve(tmp_path / "stack", broker_url) as serve:
        serve.wait_until_ready()
        tracked = descendants(serve.proc.pid)
        names = {line.split("|")[0].strip() for line in serve.lines if "|" in line}
        assert {"web", "worker-high", "worker-default", "worker-low", "beat"} <= names
        # web master + 2 gunicorn workers, 3 celery workers with 2 pool processes each, beat
        assert len(tracked) >= 1 + 2 + 3 * 3 + 1, serve.tail()

        serve.signal(signum)
        code = serve.wait_exit(timeout=90)

        assert code == 0, serve.tail()
        assert not _await_no_survivors(tracked), f"still alive: {survivors(tracked)}"
        assert "all processes stopped" in serve.output


def test_a_dead_child_stops_the_whole_stack_with_a_failure(broker_url: str, tmp_path: Path) -> None:
    with running_serve(tmp_path / "stack", broker_url) as serve:
        serve.wait_until_ready()
        tracked = descendants(serve.proc.pid)
        beat_line = serve.wait_for(r"started beat \(pid \d+\)")
        beat_pid = int(beat_line.split("(pid ")[1].split(")")[0])

        os.kill(beat_pid, signal.SIGKILL)
        code = serve.wait_exit(timeout=90)

        assert code == 1, serve.tail()
        assert "beat (pid" in serve.output
        assert "died: signal 9 (SIGKILL)" in serve.output
        assert "nothing is restarted" in serve.output
        assert not _await_no_survivors(tracked), f"still alive: {survivors(tracked)}"
