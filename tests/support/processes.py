"""Real child processes for tests: Celery workers, beats, the web server.

Each runs in its own process group with output captured to a file, so a test can wait for a
log line with a deadline (never a fixed sleep) and stop exactly what it started, by PID.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

CELERY = [sys.executable, "-m", "celery", "-A", "project.worker:celery_app"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any PERIODIC_* leaking in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERIODIC_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 80
"""How much of each child's log a failed test's report shows (`log_tails`)."""

_started: list[ManagedProcess] = []
"""Every process started in this pytest process, in order (their logs outlive them)."""


def started_count() -> int:
    return len(_started)


def log_tails(since: int) -> list[tuple[str, str]]:
    """(name, the last `LOG_TAIL_LINES` of its log) for each process started after the first
    `since`: what a failed test's report shows, since CI keeps no temporary files."""
    tails = []
    for process in _started[since:]:
        with contextlib.suppress(OSError):
            lines = process.output().splitlines()[-LOG_TAIL_LINES:]
            tails.append((f"{process.name} (pid {process.pid}) log, last lines", "\n".join(lines)))
    return tails


class ManagedProcess:
    def __init__(
        self, name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={"PYTHONPATH": str(REPO_ROOT), **env},
            cwd=log_dir,
            start_new_session=True,
        )
        _started.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float, count: int = 1) -> list[str]:
        """Wait until `pattern` (a regex) has matched `count` times in the output."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while True:
            matches = compiled.findall(self.output())
            if len(matches) >= count:
                return matches
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before {pattern!r}:\n"
                    + self.output()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {pattern!r} seen {len(matches)}/{count} times in {timeout}s:\n"
                    + self.output()[-4000:]
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the main process only (its pool children are orphaned, as in a real crash)."""
        self.process.kill()
        self.process.wait(10)


def celery_worker(
    queues: str, log_dir: Path, env: Mapping[str, str], name: str = "worker", concurrency: int = 1
) -> ManagedProcess:
    argv = [
        *CELERY,
        "worker",
        "-Q",
        queues,
        "-n",
        f"{name}@%h",
        "-c",
        str(concurrency),
        "-l",
        "INFO",
        "--without-mingle",
        "--without-gossip",
    ]
    return ManagedProcess(name, argv, log_dir, env)


def celery_beat(log_dir: Path, env: Mapping[str, str], name: str = "beat") -> ManagedProcess:
    argv = [*CELERY, "beat", "-l", "INFO", "-s", str(log_dir / f"{name}-schedule")]
    return ManagedProcess(name, argv, log_dir, env)
