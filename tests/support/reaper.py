"""Containers left behind by a test process that died before its cleanup ran.

A pytest process killed by SIGKILL, the OOM killer or a CI timeout never reaches its `finally`:
its containers keep running, and on host networking they keep their ports and their CPU. So every
container a test starts names its owner: testcontainers get the label ``periodic.test.pid``,
Compose stacks a project name ``periodic-e2e-<pid>-<suffix>``. Before a test starts containers
of its own it calls `reap_orphans`, which force-removes those whose owner is no longer alive
(with their volumes), on the engine the test uses. Containers of live test processes (another
session on the same engine) and every other container are left alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings

__all__ = ["COMPOSE_PREFIX", "OWNER_LABEL", "compose_project", "owner_labels", "reap_orphans"]

OWNER_LABEL = "periodic.test.pid"
COMPOSE_PREFIX = "periodic-e2e-"
_COMPOSE_LABEL = "com.docker.compose.project"
_COMPOSE_OWNER = re.compile(re.escape(COMPOSE_PREFIX) + r"(\d+)-[0-9a-z]+\Z")


def owner_labels() -> dict[str, str]:
    """The labels that make a container this process's."""
    return {OWNER_LABEL: str(os.getpid())}


def compose_project(suffix: str) -> str:
    """A Compose project name that makes the stack this process's."""
    return f"{COMPOSE_PREFIX}{os.getpid()}-{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _docker(host: str, *args: str) -> str:
    result = subprocess.run(
        ["docker", "--host", host, *args], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def _owner(labels: dict[str, str]) -> int | None:
    pid = labels.get(OWNER_LABEL, "")
    if pid.isdigit():
        return int(pid)
    match = _COMPOSE_OWNER.match(labels.get(_COMPOSE_LABEL, ""))
    return int(match.group(1)) if match else None


def reap_orphans(host: str) -> list[str]:
    """Force-remove the containers (and Compose volumes) of dead test processes on `host`;
    returns the names of the containers removed. Best effort: a reaping that cannot run (no
    docker CLI, an engine that stops answering) warns and lets the tests go on."""
    try:
        return _reap(host)
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or error
        warnings.warn(
            f"containers of killed test runs not reaped on {host}: {detail}", stacklevel=2
        )
        return []


def _reap(host: str) -> list[str]:
    template = '{{.ID}}\t{{.Names}}\t{{.Label "%s"}}\t{{.Label "%s"}}' % (  # noqa: UP031
        OWNER_LABEL,
        _COMPOSE_LABEL,
    )
    removed: list[str] = []
    projects: set[str] = set()
    for line in _docker(host, "ps", "--all", "--format", template).splitlines():
        container, name, pid, project = line.split("\t")
        owner = _owner({OWNER_LABEL: pid, _COMPOSE_LABEL: project})
        if owner is None or _alive(owner):
            continue
        _docker(host, "rm", "--force", "--volumes", container)
        removed.append(name)
        if project:
            projects.add(project)
    for project in sorted(projects):
        selector = f"label={_COMPOSE_LABEL}={project}"
        for kind in ("volume", "network"):
            found = _docker(host, kind, "ls", "--quiet", "--filter", selector).split()
            if found:
                _docker(host, kind, "rm", *(["--force"] if kind == "volume" else []), *found)
    return removed
