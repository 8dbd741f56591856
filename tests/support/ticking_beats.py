"""A real `DatabaseScheduler` in the test's process, ticked on its own thread as `celery beat`'s
loop would; the broker is a recording stand-in (for tests whose subject is the tick, the lease or
the store, not RabbitMQ)."""

from __future__ import annotations

import threading
from datetime import timedelta

from pydantic import SecretStr

from scheduling.beat.scheduler import DatabaseScheduler
from scheduling.celery.app import create_celery
from scheduling.config.settings import (
    AppSettings,
    BeatSettings,
    BrokerSettings,
    QueueSettings,
    ScheduleEntry,
    Settings,
)
from tests.support.publishers import RecordingPublisher

__all__ = ["TickingBeat", "one_entry_settings"]

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"


def one_entry_settings(
    url: str,
    every: timedelta,
    lease_ttl: timedelta,
    sync_interval: timedelta = timedelta(seconds=1),
) -> Settings:
    """Settings for a beat on store `url` with one heartbeat entry ("pulse") every `every`."""
    return Settings(
        app=AppSettings(database_url=SecretStr(url)),
        broker=BrokerSettings(url=SecretStr("amqp://guest:guest@127.0.0.1:1//")),
        queues={"default": QueueSettings(default=True)},
        beat=BeatSettings(scheduler="database", lease_ttl=lease_ttl, sync_interval=sync_interval),
        schedule={"pulse": ScheduleEntry(task=HEARTBEAT, every=every)},
    )


class TickingBeat:
    """A scheduler ticked on its own thread until `close`, as `celery beat`'s loop does."""

    def __init__(self, settings: Settings, beat_id: str | None = None) -> None:
        self.scheduler = DatabaseScheduler(app=create_celery(settings), lazy=True)
        if beat_id is not None:
            self.scheduler.beat_id = beat_id  # one process, several beats: several holders
        self.publisher = RecordingPublisher()
        self.scheduler.publisher = self.publisher  # type: ignore[assignment]
        self.scheduler.setup_schedule()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(min(self.scheduler.tick(), 0.1))

    @property
    def leading(self) -> bool:
        leadership = self.scheduler.leadership
        return leadership is not None and leadership.leading

    def close(self) -> None:
        self._stop.set()
        self.scheduler.wakeup.nudge()
        self._thread.join(timeout=15)
        self.scheduler.close()
