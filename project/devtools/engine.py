"""A private Docker engine for the container paths, started only when no engine answers.

The container paths (``nox -s images``, the testcontainers broker, the Compose end-to-end test)
need a Docker engine.  A developer's machine usually has one (``DOCKER_HOST`` or
``/var/run/docker.sock``); CI machines of this project have none running, only Debian's
``docker.io`` package installed.  :func:`ensure_engine` then starts ``dockerd`` privately:

* data root ``/var/lib/periodic-docker/engine`` (images and their build cache live here between
  runs on the same machine; override the directory with ``PERIODIC_DOCKER_ROOT``),
* exec root ``/run/periodic-docker``, socket ``unix:///run/periodic-docker.sock``, PID file
  ``/run/periodic-docker.pid``, log ``<root>/dockerd.log``,
* ``--bridge=none --iptables=false``: no bridge network and no firewall rules, so containers use
  host networking only (``network_mode: host``) and the engine never touches the machine's
  routing.

It is started in a session of its own and keeps running after the caller exits, so later
sessions reuse it; ``python -m project.devtools.engine stop`` stops it (only a ``dockerd`` whose
command line names our socket, found through our PID file).  Stdlib only: ``.ci/run`` calls this
module with the system Python.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from project.errors import EngineUnavailable

__all__ = [
    "DEFAULT_SOCKET",
    "PRIVATE_HOST",
    "data_root",
    "engine_answers",
    "ensure_engine",
    "find_engine",
    "stop_private_engine",
]

DEFAULT_SOCKET: Final = Path("/var/run/docker.sock")
PRIVATE_SOCKET: Final = Path("/run/periodic-docker.sock")
PRIVATE_HOST: Final = f"unix://{PRIVATE_SOCKET}"
PRIVATE_EXEC_ROOT: Final = Path("/run/periodic-docker")
PRIVATE_PIDFILE: Final = Path("/run/periodic-docker.pid")
_START_TIMEOUT: Final = 90.0


def data_root() -> Path:
    """Where the private engine keeps its images and log (``PERIODIC_DOCKER_ROOT``)."""
    return Path(os.environ.get("PERIODIC_DOCKER_ROOT", "/var/lib/periodic-docker"))


def engine_answers(host: str, timeout: float = 2.0) -> bool:
    """True when the engine at ``host`` (``unix://…`` or ``tcp://host:port``) answers ``/_ping``."""
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with sock:
                sock.settimeout(timeout)
                sock.connect(host.removeprefix("unix://"))
                reply = _ping(sock)
        elif host.startswith("tcp://"):
            address, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
            with socket.create_connection((address, int(port)), timeout=timeout) as sock:
                reply = _ping(sock)
        else:
            return False
    except (OSError, ValueError):
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def _ping(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
    return sock.recv(4096)


def find_engine() -> str | None:
    """The ``DOCKER_HOST`` of an engine that answers now, or None.

    ``DOCKER_HOST`` when set (and only it: an explicit choice is never second-guessed), else the
    default socket, else our private engine.
    """
    explicit = os.environ.get("DOCKER_HOST", "").strip()
    if explicit:
        return explicit if engine_answers(explicit) else None
    for host in (f"unix://{DEFAULT_SOCKET}", PRIVATE_HOST):
        if engine_answers(host):
            return host
    return None


def ensure_engine() -> str:
    """The ``DOCKER_HOST`` of an answering engine, starting the private one when none answers.

    Raises :class:`EngineUnavailable` naming the reason (no ``dockerd``, not root, or the
    daemon's own last log lines) when no engine can be had.
    """
    found = find_engine()
    if found is not None:
        return found
    if os.environ.get("DOCKER_HOST", "").strip():
        msg = f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer"
        raise EngineUnavailable(msg)
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        msg = "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
        raise EngineUnavailable(msg)
    if os.geteuid() != 0:
        msg = "no Docker engine answers, and starting a private dockerd needs root"
        raise EngineUnavailable(msg)
    _start_private_engine(dockerd)
    return PRIVATE_HOST


def _private_pid() -> int | None:
    """PID of our running dockerd per its PID file, checked against its command line."""
    try:
        pid = int(PRIVATE_PIDFILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    names_socket = any(str(PRIVATE_SOCKET).encode() in part for part in cmdline)
    return pid if cmdline and cmdline[0].endswith(b"dockerd") and names_socket else None


def _start_private_engine(dockerd: str) -> None:
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "dockerd.log"
    pid = _private_pid()
    if pid is None:
        with log.open("ab") as handle:
            handle.write(f"\n===== starting dockerd at {time.ctime()} =====\n".encode())
            subprocess.Popen(
                [
                    dockerd,
                    f"--data-root={root / 'engine'}",
                    f"--exec-root={PRIVATE_EXEC_ROOT}",
                    f"--host={PRIVATE_HOST}",
                    f"--pidfile={PRIVATE_PIDFILE}",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                ],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the caller: later sessions reuse it
            )
    deadline = time.monotonic() + _START_TIMEOUT
    while not engine_answers(PRIVATE_HOST):
        if time.monotonic() >= deadline:
            msg = f"the private dockerd did not answer on {PRIVATE_HOST} in {_START_TIMEOUT:.0f} s"
            raise EngineUnavailable(f"{msg}; last lines of {log}:\n{_log_tail(log)}")
        time.sleep(0.25)


def stop_private_engine(timeout: float = 60.0) -> bool:
    """Stop our private dockerd (SIGTERM, then SIGKILL); False when it was not running."""
    pid = _private_pid()
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):  # not just the PID file: dockerd removes it before it has exited
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.25)
    return True


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def engine_cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m project.devtools.engine", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    if args.action == "start":
        try:
            print(ensure_engine())
        except EngineUnavailable as error:
            print(f"no Docker engine: {error}", file=sys.stderr)
            return 1
        return 0
    if args.action == "stop":
        print("stopped" if stop_private_engine() else "the private engine was not running")
        return 0
    found = find_engine()
    print(found or "no Docker engine answers")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(engine_cli())
