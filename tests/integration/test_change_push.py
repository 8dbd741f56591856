"""Changes are pushed to the sleeping leader; the poll fallback still catches a lost signal.

A real `DatabaseScheduler` on a real store (SQLite file and PostgreSQL), ticked in a thread the
way Celery's beat loop ticks it. Nothing is due, so no broker is needed (a closed port makes any
publish attempt fail loudly). The test writes through a second `Store`, as the API would, and
waits, with a deadline, for the leader's in-memory table to show the change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

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
from scheduling.store import ChangeSignal, Store
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration]

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"
ENTRY = "push-probe"


class RunningBeat:
    """A scheduler ticked by a thread until `stop()`."""

    def __init__(
        self, store_url: str, sync_interval: timedelta, lease_ttl: timedelta = timedelta(seconds=30)
    ) -> None:
        settings = Settings(
            app=AppSettings(database_url=SecretStr(store_url)),
            broker=BrokerSettings(url=SecretStr("amqp://guest:guest@127.0.0.1:1//")),
            queues={"default": QueueSettings(default=True)},
            beat=BeatSettings(sync_interval=sync_interval, lease_ttl=lease_ttl),
            schedule={},
        )
        self.scheduler = DatabaseScheduler(app=create_celery(settings), lazy=True)
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-beat", daemon=True)

    def _run(self) -> None:
        self.scheduler.setup_schedule()
        while not self._stop.is_set():
            self.ticks += 1
            delay = self.scheduler.tick()
            if delay > 0:
                self._stop.wait(delay)

    def start(self) -> None:
        self._thread.start()
        wait_for(lambda: self.settled, 15, "the beat leads and sleeps on its change signal")

    @property
    def settled(self) -> bool:
        scheduler = self.scheduler
        leadership = scheduler.leadership
        return (
            leadership is not None
            and leadership.leading
            and scheduler.wakeup.listening
            and ENTRY in scheduler.table.index
        )

    def active(self) -> bool:
        return self.scheduler.table.index[ENTRY].active

    def stop(self) -> None:
        self._stop.set()
        self.scheduler.wakeup.nudge()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive()
        self.scheduler.close()


@pytest.fixture
def beat_on(store_url: str, store: Store) -> Iterator[Any]:
    """Start a beat on the test's store with the given sync interval (stopped after)."""
    later = datetime.now(UTC) + timedelta(days=1)
    definition = ScheduleEntry(task=HEARTBEAT, every=timedelta(hours=1), queue="default")
    store.bulk_create_entries([(ENTRY, definition, later)])
    started: list[RunningBeat] = []

    def start(
        sync_interval: timedelta, lease_ttl: timedelta = timedelta(seconds=30)
    ) -> RunningBeat:
        beat = RunningBeat(store_url, sync_interval, lease_ttl)
        started.append(beat)
        beat.start()
        return beat

    yield start
    for beat in started:
        beat.stop()


def test_a_change_reaches_the_leader_without_waiting_for_a_poll(beat_on: Any, store: Store) -> None:
    beat = beat_on(timedelta(seconds=60))  # the poll fallback would take 30 s
    for paused in (True, False, True):
        time.sleep(0.2)  # let the leader fall asleep again
        store.set_paused(ENTRY, paused)
        took = wait_for(lambda p=paused: beat.active() is not p, 5, f"paused={paused} arrives")
        assert took < 5


def test_the_leaders_own_lease_renewals_do_not_make_it_tick(
    beat_on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite every commit of another connection moves data_version and wakes the watch,
    the beat's own renewals (every lease_ttl / 3) included; only a schedule change may tick."""
    renewals: list[bool] = []
    renew = Store.renew_lease

    def counted(self: Store, *args: Any, **kwargs: Any) -> bool:
        renewals.append(renew(self, *args, **kwargs))
        return renewals[-1]

    monkeypatch.setattr(Store, "renew_lease", counted)
    beat = beat_on(timedelta(seconds=60), lease_ttl=timedelta(seconds=1))
    ticks, renewed = beat.ticks, len(renewals)
    wait_for(lambda: len(renewals) >= renewed + 4, 10, "four renewals (every 1/3 s)")
    assert all(renewals)
    assert beat.ticks == ticks


class DeafSignal:
    """A working signal whose notifications all get lost."""

    def __init__(self, real: ChangeSignal) -> None:
        self._real = real

    def fileno(self) -> int | None:
        return None

    def changed(self) -> bool:
        self._real.changed()
        return False

    def current_seq(self) -> int:
        return self._real.current_seq()

    def close(self) -> None:
        self._real.close()


def test_a_lost_notification_is_picked_up_by_the_poll_fallback(
    beat_on: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Store.change_signal

    def deaf_open(self: Store) -> ChangeSignal | None:
        signal = real_open(self)
        return None if signal is None else DeafSignal(signal)

    monkeypatch.setattr(Store, "change_signal", deaf_open)
    beat = beat_on(timedelta(seconds=2))
    time.sleep(0.2)
    store.set_paused(ENTRY, True)
    # Read again within sync_interval / LISTENING_POLLS = 2 s; the deadline leaves slack.
    wait_for(lambda: not beat.active(), 5, "the pause arrives by polling")


def test_a_change_without_notify_is_picked_up_on_postgresql(
    beat_on: Any, store: Store, store_url: str
) -> None:
    """A write that bumps the sequence but sends no NOTIFY (a lost notification, for real)."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite's data_version moves on every commit of another connection")
    beat = beat_on(timedelta(seconds=2))
    engine = create_engine(store_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            seq = conn.execute(
                text("UPDATE periodic_changes SET seq = seq + 1 WHERE id = 1 RETURNING seq")
            ).scalar_one()
            conn.execute(
                text(
                    "UPDATE periodic_entries SET paused = true, change_seq = :seq WHERE name = :n"
                ),
                {"seq": seq, "n": ENTRY},
            )
    finally:
        engine.dispose()
    wait_for(lambda: not beat.active(), 5, "the silent pause arrives by polling")


def test_a_dropped_listen_connection_is_reopened(
    beat_on: Any, store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("LISTEN connections exist on PostgreSQL only")
    monkeypatch.setattr("scheduling.beat.scheduler.SIGNAL_RETRY", 0.2)
    beat = beat_on(timedelta(seconds=60))
    engine = create_engine(store_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'periodic-beat-listener' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
        assert killed == 1
        # The leader notices the dead socket, polls meanwhile and listens again.
        store.set_paused(ENTRY, True)
        wait_for(lambda: not beat.active(), 10, "the pause arrives across the reconnect")
        wait_for(lambda: beat.scheduler.wakeup.listening, 10, "listening again")
        time.sleep(0.2)
        store.set_paused(ENTRY, False)
        wait_for(lambda: beat.active(), 5, "a change arrives on the new connection")
    finally:
        engine.dispose()
