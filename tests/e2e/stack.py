"""The whole stack as ``nox -s serve`` starts it, run by tests in a temp directory.

`ServeProcess` launches ``python -m project.devtools.serve`` with the shipped settings copied into
a temp
directory (so ``var/`` lands there) and the test broker in ``PERIODIC_BROKER__URL``; it collects
the output, waits for lines, and tracks every descendant process so a test can prove none survive.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED_SETTINGS = REPO / "settings.toml"
READY_BANNER = "Periodic is running."


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # state ppid pgrp session ... (field 22 = starttime)


def process_identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): survives PID reuse, unlike a bare PID. None if gone or a zombie."""
    fields = _proc_stat(pid)
    if fields is None or fields[0] in {"Z", "X"}:
        return None
    return pid, fields[19]


def descendants(root: int) -> set[tuple[int, str]]:
    """Identities of every live process below ``root`` (by parent links, across sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[tuple[int, str]] = set()
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        identity = process_identity(pid)
        if identity is not None:
            found.add(identity)
        stack.extend(children.get(pid, []))
    return found


def survivors(identities: set[tuple[int, str]]) -> set[tuple[int, str]]:
    return {identity for identity in identities if process_identity(identity[0]) == identity}


class ServeProcess:
    """One ``python -m project.devtools.serve`` run, its output collected line by line."""

    def __init__(self, workdir: Path, broker_url: str, port: int, extra_env: Mapping[str, str]):
        self.workdir = workdir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._cond = threading.Condition()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PERIODIC_") and key not in {"FORCE_COLOR"}
        }
        env.update(
            PERIODIC_SETTINGS=str(workdir / "settings.toml"),
            PERIODIC_BROKER__URL=broker_url,
            NO_COLOR="1",
            PYTHONPATH=str(Path(__file__).resolve().parents[2]),
            **extra_env,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "project.devtools.serve", "--port", str(port), "--no-broker"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout as stream:
            for raw in iter(stream.readline, b""):
                with self._cond:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90.0, count: int = 1) -> str:
        """Wait for ``count`` lines matching ``pattern``; fail with the output if none come."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [line for line in self.lines if regex.search(line)]
                if len(matches) >= count:
                    return matches[count - 1]
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"serve exited ({self.proc.returncode}) before {pattern!r}:\n{self.tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.tail()}")
                self._cond.wait(min(remaining, 0.5))

    def tail(self, lines: int = 80) -> str:
        """The last lines, after any line that says a child died (and the lines before it)."""
        deaths = [index for index, line in enumerate(self.lines) if " died: " in line]
        context = []
        for index in deaths:
            context.extend(self.lines[max(0, index - 40) : index + 1])
        picked = [*context, "...", *self.lines[-lines:]] if context else self.lines[-lines:]
        return "\n".join(picked)

    def wait_until_ready(self, queues: int = 3) -> None:
        """Banner printed, every worker ready, beat started."""
        self.wait_for(re.escape(READY_BANNER), timeout=120.0)
        self.wait_for(r"^worker-\S+\s+\|.*@\S+ ready\.", timeout=90.0, count=queues)
        self.wait_for(r"^beat\s+\|.*beat: Starting", timeout=90.0)

    def token(self) -> str:
        return (self.workdir / "var" / "dev-token").read_text().strip()

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve did not exit within {timeout}s:\n{self.tail()}") from None

    def kill_everything(self) -> None:
        """Last resort after a failed test: nothing of ours may outlive it."""
        for pid, _ in descendants(self.proc.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)


def prepare_workdir(workdir: Path, extra_settings: str = "") -> Path:
    """The shipped settings.toml, plus `extra_settings` appended, in a fresh directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHIPPED_SETTINGS, workdir / "settings.toml")
    if extra_settings:
        with (workdir / "settings.toml").open("a", encoding="utf-8") as handle:
            handle.write("\n" + extra_settings)
    return workdir


@contextmanager
def running_serve(
    workdir: Path,
    broker_url: str,
    extra_env: Mapping[str, str] | None = None,
    extra_settings: str = "",
) -> Iterator[ServeProcess]:
    """A started (not yet ready) serve; whatever happens, all its processes are gone after."""
    serve = ServeProcess(
        prepare_workdir(workdir, extra_settings), broker_url, free_port(), extra_env or {}
    )
    tracked: set[tuple[int, str]] = set()
    try:
        yield serve
    finally:
        if serve.proc.poll() is None:
            tracked |= descendants(serve.proc.pid)
            serve.signal(signal.SIGTERM)
            try:
                serve.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill_everything()
        for pid, _ in survivors(tracked):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        serve._reader.join(timeout=5)
