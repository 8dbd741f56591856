"""Running several long-lived commands as one stack: the process supervisor behind ``nox -s serve``.

Each child leads its own session, so Ctrl-C in the terminal reaches only the supervisor, which then
stops the children in order, and so a child can be killed together with everything it forked.
Output is read by one thread per child and printed line by line with a coloured prefix.

Stopping is graceful first: SIGTERM goes to each child's *leader* only, because Celery's pool
processes die at once on SIGTERM (losing the task they run) while the worker's own SIGTERM handler
waits for them; gunicorn and beat likewise shut down their own children. Whatever is still alive
in a child's session after the timeout, or after its leader exited, is SIGKILLed, and a child is
reaped only when its whole session is gone, so its PID (the session id) cannot be reused meanwhile.

Nothing is restarted: a child that dies stops the whole stack with a non-zero exit, because a
supervisor that hides crashes is worse than none.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from project.devtools.sessions import session_members

__all__ = ["Child", "ChildSpec", "Supervisor"]

_POLL: Final = 0.1
_COLOURS: Final = ("36", "32", "33", "35", "34", "96", "92", "93", "95", "94")
_PR_SET_PDEATHSIG: Final = 1


@dataclass(frozen=True)
class ChildSpec:
    """One command of the stack: its display name, argv and complete environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path | None = None


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    reader: threading.Thread | None = None
    reaped_status: int | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exit_status(self) -> str | None:
        """How the leader ended ("exit code 1", "signal 9 (SIGKILL)"), None while it runs.

        Uses ``waitid(WNOWAIT)`` so the zombie stays unreaped and its PID reserved.
        """
        if self.proc.returncode is not None:
            return _describe_returncode(self.proc.returncode)
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return "exited"
        if info is None:
            return None
        if info.si_code == os.CLD_EXITED:
            return f"exit code {info.si_status}"
        return _describe_returncode(-info.si_status)


def _describe_returncode(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {-code} ({signal.Signals(-code).name})"
    except ValueError:
        return f"signal {-code}"


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor itself is killed (no orphans)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Supervisor:
    """Start the children, relay their output, notice a death, stop them all.

    ``out`` (default stdout) receives every line, prefixed with the child's name (or "serve" for
    the supervisor's own messages); ANSI colours are used when ``colour`` is true.
    """

    def __init__(
        self, *, out: IO[str] | None = None, colour: bool = False, stop_timeout: float = 20.0
    ) -> None:
        self.children: list[Child] = []
        self.stop_timeout = stop_timeout
        self._out = out if out is not None else sys.stdout
        self._colour = colour
        self._lock = threading.RLock()  # signal handlers log from the main thread too
        self._width = len("serve")
        self._colours: dict[str, str] = {}

    # ------------------------------------------------------------------------------- output
    def log(self, message: str, *, source: str = "serve", loud: bool = False) -> None:
        """Print one or more lines under ``source``'s prefix (``loud``: bold red)."""
        for line in message.splitlines() or [""]:
            self._emit(source, line, loud=loud)

    def _emit(self, source: str, line: str, *, loud: bool = False) -> None:
        prefix = f"{source:<{self._width}} |"
        if self._colour:
            code = "1;31" if loud else self._colours.get(source, "1")
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
            if loud:
                line = f"\x1b[1;31m{line}\x1b[0m"
        with self._lock:
            try:
                self._out.write(f"{prefix} {line}\n")
                self._out.flush()
            except (OSError, ValueError):
                pass  # the terminal went away; keep supervising

    def _pump(self, child: Child) -> None:
        stream = child.proc.stdout
        assert stream is not None
        with stream:
            for raw in iter(stream.readline, b""):
                self._emit(child.spec.name, raw.decode("utf-8", "replace").rstrip("\r\n"))

    # ---------------------------------------------------------------------------- lifecycle
    def start(self, specs: Sequence[ChildSpec]) -> None:
        """Spawn every child (each in its own session), then start the output readers."""
        self._width = max(self._width, *(len(spec.name) for spec in specs))
        for index, spec in enumerate(specs):
            self._colours[spec.name] = _COLOURS[index % len(_COLOURS)]
            proc = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env),
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # safe: every child is spawned before a thread starts
            )
            self.children.append(Child(spec, proc))
        for child in self.children:
            child.reader = threading.Thread(
                target=self._pump, args=(child,), name=f"log-{child.spec.name}", daemon=True
            )
            child.reader.start()
            self.log(f"started {child.spec.name} (pid {child.pid}): {' '.join(child.spec.argv)}")

    def wait(
        self, stop: threading.Event, on_tick: Callable[[], None] | None = None
    ) -> Child | None:
        """Block until ``stop`` is set (None) or a child exits (that child)."""
        while not stop.wait(_POLL):
            for child in self.children:
                if child.exit_status() is not None:
                    return child
            if on_tick is not None:
                on_tick()
        return None

    def pids(self) -> set[int]:
        """Every live process of every child's session."""
        return session_members(
            {child.pid for child in self.children if child.proc.returncode is None}
        )

    def stop(self) -> None:
        """SIGTERM each leader, SIGKILL what outlives ``stop_timeout``, reap; leave no process."""
        running = [child for child in self.children if child.proc.returncode is None]
        for child in running:
            if child.exit_status() is None:
                self.log(f"stopping {child.spec.name} (pid {child.pid})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        pending = list(running)
        while pending:
            for child in list(pending):
                if child.exit_status() is not None:
                    self._finish(child, grace=2.0)
                    pending.remove(child)
            if pending and time.monotonic() >= deadline:
                for child in pending:
                    self.log(
                        f"{child.spec.name} (pid {child.pid}) did not stop within "
                        f"{self.stop_timeout:.0f}s; killing it",
                        loud=True,
                    )
                    self._finish(child, grace=0.0)
                pending = []
            time.sleep(_POLL)
        for child in self.children:
            if child.reader is not None:
                child.reader.join(timeout=5.0)

    def _finish(self, child: Child, grace: float) -> None:
        """Give the session's stragglers ``grace`` seconds after SIGTERM, then SIGKILL; reap."""
        session = {child.pid}
        leftovers = session_members(session)
        if leftovers and grace > 0 and child.exit_status() is not None:
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            until = time.monotonic() + grace
            while session_members(session) and time.monotonic() < until:
                time.sleep(_POLL)
        kill_deadline = time.monotonic() + 10.0
        while True:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            for pid in session_members(session):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if child.exit_status() is not None and not session_members(session):
                break
            if time.monotonic() >= kill_deadline:
                self.log(f"processes {sorted(session_members(session))} survive SIGKILL", loud=True)
                break
            time.sleep(_POLL)
        status = child.exit_status()
        child.proc.wait()
        self.log(f"{child.spec.name} stopped ({status})")
