"""A stage for worker tests: settings file, store, a sending app, and real worker processes.

Queues get unique names per stage so tests sharing the session broker never see each other's
messages; they are deleted when the stage closes. Runs are claimed in the store the way beat or
"run now" claims them, then published with the claimed task id, so the worker's ledger knows them.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Connection

from scheduling.broker.topology import QueueStatus, declare_topology, queue_status
from scheduling.celery.app import create_celery
from scheduling.config.loading import load_settings
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.store import RunRecord, RunState, Store
from tests.support.processes import ManagedProcess, clean_env

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_TASKS = "tests.support.worker_tasks"

SETTINGS_TEMPLATE = """
[app]
database_url = "{database_url}"

[broker]
url = "{broker_url}"

{queue_tables}

[worker]
max_retries = 3
retry_backoff = "200ms"
retry_backoff_max = "1s"
max_deliveries = 3
{extra}
"""


def unique_queues(*roles: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {role: f"{role}-{suffix}" for role in roles}


class WorkerStage:
    """Everything one test module needs to drive real workers; close() undoes it all."""

    def __init__(
        self,
        directory: Path,
        broker_url: str,
        roles: Iterable[str] = ("high", "default", "low"),
        extra_settings: str = "",
        queue_type: str = "classic",
    ) -> None:
        self.directory = directory
        self.broker_url = broker_url
        self.queues = unique_queues(*roles)
        priorities = {"high": 9, "default": 5, "low": 1}
        tables = []
        for index, (role, name) in enumerate(self.queues.items()):
            tables.append(
                f'[queues."{name}"]\ntype = "{queue_type}"\npriority = {priorities.get(role, 5)}'
            )
            if role == "default" or (index == 0 and "default" not in self.queues):
                tables[-1] += "\ndefault = true"
        self.settings_path = directory / "settings.toml"
        self.settings_path.write_text(
            SETTINGS_TEMPLATE.format(
                database_url=f"sqlite:///{directory / 'periodic.db'}",
                broker_url=broker_url,
                queue_tables="\n\n".join(tables),
                extra=extra_settings,
            ),
            encoding="utf-8",
        )
        self.settings: Settings = load_settings(self.settings_path)
        self.store = Store.open(self.settings.app.database_url.get_secret_value())
        self.app: Celery = create_celery(self.settings, str(self.settings_path))
        self.env = clean_env(
            {"PERIODIC_SETTINGS": str(self.settings_path), "PYTHONPATH": str(REPO_ROOT)}
        )
        self.workers: list[ManagedProcess] = []
        self._sent = 0
        with Connection(broker_url) as connection:
            declare_topology(connection, self.settings)

    # ------------------------------------------------------------------ workers
    def start_worker(self, role: str, name: str, *, wait: bool = True) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "project.worker:celery_app",
            "worker",
            "-Q",
            self.queues[role],
            "-n",
            f"{name}@%h",
            "-c",
            "1",
            "-l",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "--include",
            TEST_TASKS,
        ]
        worker = ManagedProcess(name, argv, self.directory, self.env)
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: ManagedProcess, timeout: float = 90.0) -> None:
        worker.wait_for(r"ready\.", timeout=timeout)

    def queue(self, role: str) -> QueueStatus:
        with Connection(self.broker_url) as connection:
            return queue_status(connection, self.queues[role])

    def wait_for_queue(
        self,
        role: str,
        *,
        messages: int | None = None,
        consumers: int | None = None,
        timeout: float = 30.0,
    ) -> QueueStatus:
        deadline = time.monotonic() + timeout
        with Connection(self.broker_url) as connection:
            while True:
                status = queue_status(connection, self.queues[role])
                if (messages is None or status.messages == messages) and (
                    consumers is None or status.consumers == consumers
                ):
                    return status
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"queue {status.name}: wanted messages={messages} consumers={consumers}, "
                        f"have {status.messages} and {status.consumers} after {timeout}s"
                    )
                time.sleep(0.05)

    # --------------------------------------------------------------------- runs
    def claim_run(self, task: str, role: str) -> str:
        """Claim a manual run of a fresh entry for `task`; return its task id."""
        self._sent += 1
        entry = f"entry-{self._sent}-{uuid.uuid4().hex[:6]}"
        self.store.create_entry(
            entry, ScheduleEntry(task=task, every=timedelta(hours=1)), next_run_at=None
        )
        task_id = str(uuid.uuid4())
        self.store.claim_manual_run(entry, datetime.now(UTC), task_id, self.queues[role])
        return task_id

    def send(
        self,
        task: str,
        role: str,
        *,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        known: bool = True,
        **options: Any,
    ) -> str:
        """Publish `task` to the role's queue; a `known` run is claimed in the ledger first."""
        if task_id is None:
            task_id = self.claim_run(task, role) if known else str(uuid.uuid4())
        self.app.send_task(
            task, kwargs=dict(kwargs or {}), task_id=task_id, queue=self.queues[role], **options
        )
        if known:
            self.store.mark_dispatched([task_id], datetime.now(UTC))
        return task_id

    def wait_for_run(
        self, task_id: str, states: Collection[RunState], timeout: float = 30.0
    ) -> RunRecord:
        deadline = time.monotonic() + timeout
        while True:
            run = self.store.get_run(task_id)
            if run is not None and run.state in states:
                return run
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {w.name}\n{w.output()[-3000:]}" for w in self.workers)
                raise AssertionError(
                    f"run {task_id} is {run.state if run else 'absent'}, not one of "
                    f"{sorted(s.value for s in states)} after {timeout}s\n{logs}"
                )
            time.sleep(0.05)

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        with contextlib.suppress(Exception), Connection(self.broker_url) as connection:
            channel = connection.channel()
            for name in self.queues.values():
                channel.queue_delete(name)
            channel.close()
        self.store.close()


@contextlib.contextmanager
def worker_stage(
    directory: Path,
    broker_url: str,
    roles: Iterable[str] = ("high", "default", "low"),
    extra_settings: str = "",
    queue_type: str = "classic",
) -> Iterator[WorkerStage]:
    stage = WorkerStage(directory, broker_url, roles, extra_settings, queue_type)
    try:
        yield stage
    finally:
        stage.close()


def trace_events(path: Path) -> list[str]:
    """The first word of each line of a task's trace file (see tests.support.worker_tasks)."""
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()]
