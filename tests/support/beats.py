"""Helpers for tests that run real beats: a settings file, beat processes and a queue tap.

The tap consumes the test's queues in a thread and records every task message with the time it
arrived, so a test can wait for "the first message of entry X" with a deadline and, at the end,
count task ids per slot (exactly-once) without trusting anything beat says about itself. It
reconnects on its own, so it keeps counting across a broker restart.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kombu import Connection

from tests.support.processes import CELERY, ManagedProcess, clean_env

BEAT_SETTINGS = """
[app]
database_url = "{database_url}"

[broker]
url = "{broker_url}"
connect_timeout = "2s"

[queues.{high}]
priority = 9

[queues.{default}]
default = true

[queues.{low}]
priority = 1

[beat]
scheduler = "database"
sync_interval = "1s"
lease_ttl = "{lease_ttl}"
max_catchup = 100
"""

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"


def unique_queues() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {name: f"{name}-{suffix}" for name in ("high", "default", "low")}


def beat_settings_text(
    database_url: str,
    broker_url: str,
    queues: dict[str, str],
    schedule: str = "",
    lease_ttl: str = "3s",
) -> str:
    base = BEAT_SETTINGS.format(
        database_url=database_url, broker_url=broker_url, lease_ttl=lease_ttl, **queues
    )
    return base + schedule


def start_beat(
    settings: Path, log_dir: Path, name: str = "beat", extra_env: dict[str, str] | None = None
) -> ManagedProcess:
    """Stock ``celery beat`` with no scheduler flag: the settings pick DatabaseScheduler."""
    env = clean_env({"PERIODIC_SETTINGS": str(settings), **(extra_env or {})})
    argv = [*CELERY, "beat", "-l", "INFO", "-s", str(log_dir / f"{name}-schedule")]
    return ManagedProcess(name, argv, log_dir, env)


@dataclass(frozen=True)
class Seen:
    queue: str
    entry: str
    slot: str
    task_id: str
    at: float  # time.monotonic() when the tap received it


class QueueTap:
    """Consumes `queues` in a thread and records each task message (see module doc)."""

    def __init__(self, broker_url: str, queues: list[str]) -> None:
        self.broker_url = broker_url
        self.queues = queues
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-tap", daemon=True)

    def __enter__(self) -> QueueTap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def messages(self, entry: str | None = None) -> list[Seen]:
        with self._lock:
            return [m for m in self.seen if entry is None or m.entry == entry]

    def wait_for(
        self,
        condition: Callable[[list[Seen]], bool],
        timeout: float,
        what: str,
        context: Callable[[], str] | None = None,
    ) -> list[Seen]:
        """Poll until `condition(messages)`; on timeout say what was awaited (and `context()`)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.messages()
            if condition(current):
                return current
            if time.monotonic() > deadline:
                extra = f"\n{context()}" if context else ""
                raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
            time.sleep(0.02)

    def first_after(
        self, entry: str, since: float, timeout: float, queue: str | None = None
    ) -> Seen:
        def found(messages: list[Seen]) -> bool:
            return any(self._matches(m, entry, since, queue) for m in messages)

        self.wait_for(found, timeout, f"a message of {entry!r} (queue {queue})")
        return next(m for m in self.messages() if self._matches(m, entry, since, queue))

    @staticmethod
    def _matches(message: Seen, entry: str, since: float, queue: str | None) -> bool:
        return message.entry == entry and message.at >= since and queue in (None, message.queue)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception:  # the broker may be down on purpose: reconnect
                time.sleep(0.2)

    def _consume(self) -> None:
        with Connection(self.broker_url, connect_timeout=2) as connection:
            channel = connection.channel()
            for queue in self.queues:
                channel.basic_consume(
                    queue=queue, no_ack=True, callback=self._callback(queue), consumer_tag=queue
                )
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=0.2)

    def _callback(self, queue: str) -> Callable[[Any], None]:
        def on_message(message: Any) -> None:
            headers = message.headers or {}
            seen = Seen(
                queue=queue,
                entry=str(headers.get("periodic_entry")),
                slot=str(headers.get("periodic_slot")),
                task_id=str(headers.get("id")),
                at=time.monotonic(),
            )
            with self._lock:
                self.seen.append(seen)

        return on_message


@contextlib.contextmanager
def running(*processes: ManagedProcess) -> Iterator[tuple[ManagedProcess, ...]]:
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()
