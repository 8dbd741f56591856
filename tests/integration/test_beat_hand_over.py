"""A leader whose tick keeps failing for a reason of its own hands the lease to a standby.

Two real `DatabaseScheduler`s on one SQLite store, each ticked in its own thread as Celery's
loop would, with their real lease threads; the broker is a recording stand-in (the subject is
who leads). The leader's tick breaks for good (a bug of its own: not an entry's, the store's or
the broker's), while its lease thread stays healthy and would renew forever: the standby must
take over and dispatch, and the broken beat must not take the lease back while it stands by.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from scheduling.beat.scheduler import HAND_OVER_AFTER, DatabaseScheduler
from scheduling.celery.app import create_celery
from scheduling.config.settings import (
    AppSettings,
    BeatSettings,
    BrokerSettings,
    QueueSettings,
    ScheduleEntry,
    Settings,
)
from tests.support.polling import wait_for
from tests.support.publishers import RecordingPublisher

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=2)


def settings(url: str) -> Settings:
    return Settings(
        app=AppSettings(database_url=SecretStr(url)),
        broker=BrokerSettings(url=SecretStr("amqp://guest:guest@127.0.0.1:1//")),
        queues={"default": QueueSettings(default=True)},
        beat=BeatSettings(
            scheduler="database", lease_ttl=TTL, sync_interval=timedelta(seconds=0.4)
        ),
        schedule={
            "pulse": ScheduleEntry(
                task="scheduling.tasks.heartbeat.heartbeat", every=timedelta(seconds=1)
            )
        },
    )


class TickingBeat:
    """A scheduler ticked on its own thread until stopped, as `celery beat`'s loop does."""

    def __init__(self, url: str, name: str) -> None:
        self.scheduler = DatabaseScheduler(app=create_celery(settings(url)), lazy=True)
        self.scheduler.beat_id = name  # one process, two beats: two lease holders
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
        self._thread.join(timeout=10)
        self.scheduler.close()


@contextlib.contextmanager
def two_beats(directory: Path) -> Iterator[tuple[TickingBeat, TickingBeat]]:
    url = f"sqlite:///{directory / 'periodic.db'}"
    first = TickingBeat(url, "beat-a")
    wait_for(lambda: first.leading, 10, "the first beat leading")
    second = TickingBeat(url, "beat-b")
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_a_leader_whose_ticks_keep_failing_hands_over_and_the_standby_dispatches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scheduling")
    with two_beats(tmp_path) as (broken, standby):
        wait_for(lambda: "pulse" in broken.publisher.entries_sent(), 10, "the leader dispatching")
        assert not standby.leading

        def bug(token: int, mono: float) -> None:
            raise RuntimeError("a bug in this beat's own tick")

        broken.scheduler._lead = bug  # type: ignore[method-assign]
        wait_for(lambda: standby.leading, 3 * TTL.total_seconds(), "the standby taking over")
        wait_for(
            lambda: "pulse" in standby.publisher.entries_sent(), 10, "the new leader dispatching"
        )
        # While it stands by (one TTL), the broken beat leaves the lease alone.
        assert not broken.leading
        failed = [r for r in caplog.records if "beat tick failed" in r.getMessage()]
        assert len(failed) >= HAND_OVER_AFTER
        assert any("handing the lease over" in r.getMessage() for r in caplog.records)


def test_a_tick_that_fails_now_and_then_keeps_the_lease(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with two_beats(tmp_path) as (flaky, standby):
        wait_for(lambda: "pulse" in flaky.publisher.entries_sent(), 10, "the leader dispatching")
        lead = flaky.scheduler._lead
        calls = 0

        def sometimes(token: int, mono: float) -> None:
            nonlocal calls
            calls += 1
            if calls % HAND_OVER_AFTER == 0:  # never HAND_OVER_AFTER failures in a row
                raise RuntimeError("a one-off")
            lead(token, mono)

        flaky.scheduler._lead = sometimes  # type: ignore[method-assign]
        wait_for(lambda: calls >= 4 * HAND_OVER_AFTER, 20, "a dozen ticks")
        assert flaky.leading
        assert not standby.leading
        assert not any("handing the lease over" in r.getMessage() for r in caplog.records)
