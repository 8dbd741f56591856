"""An idle leader reads the change sequence once per sync_interval on its change signal's
connection, inside its sleep rather than in a tick, and writes nothing; the status comes from
the lease thread (the tick used to write it, an fsync'd store write once a second)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
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
from scheduling.store import Store
from tests.support.polling import wait_for

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"


class CountingStore:
    """The real store, counting each method called, per thread name."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[(threading.current_thread().name, name)] += 1
            return attribute(*args, **kwargs)

        return counted

    def made_by(self, thread: str) -> Counter[str]:
        with self._lock:
            return Counter({name: n for (who, name), n in self.calls.items() if who == thread})

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()


@pytest.fixture
def idle_beat(tmp_path: Path) -> Iterator[tuple[DatabaseScheduler, CountingStore]]:
    url = f"sqlite:///{tmp_path / 'periodic.db'}"
    later = datetime.now(UTC) + timedelta(days=1)
    definition = ScheduleEntry(task=HEARTBEAT, every=timedelta(hours=1), queue="default")
    real = Store.open(url)
    real.bulk_create_entries([(f"idle-{i}", definition, later) for i in range(50)])
    settings = Settings(
        app=AppSettings(database_url=SecretStr(url)),
        # Nothing is due, so nothing is published; a closed port makes any attempt fail loudly.
        broker=BrokerSettings(url=SecretStr("amqp://guest:guest@127.0.0.1:1//")),
        queues={"default": QueueSettings(default=True)},
        beat=BeatSettings(scheduler="database", lease_ttl=timedelta(seconds=1)),
        schedule={},
    )
    scheduler = DatabaseScheduler(app=create_celery(settings), lazy=True)
    store = CountingStore(real)
    scheduler.store = cast(Store, store)
    scheduler.setup_schedule()
    try:
        yield scheduler, store
    finally:
        scheduler.close()


def test_an_idle_leader_reads_the_change_sequence_in_its_sleep_and_writes_nothing(
    idle_beat: tuple[DatabaseScheduler, CountingStore],
) -> None:
    scheduler, store = idle_beat
    main = threading.current_thread().name
    store.reset()
    scheduler.tick()  # take-over: loads the due index and faults, looks for unconfirmed claims
    assert scheduler.leadership is not None
    assert scheduler.leadership.leading
    assert len(scheduler.table) == 50
    # ... and opens its change signal (a held connection watching data_version).
    assert store.made_by(main) == Counter(
        {
            "change_seq": 1,
            "entry_index": 1,
            "entry_faults": 1,
            "pending_runs": 1,
            "change_signal": 1,
        }
    )
    assert scheduler.wakeup.listening
    store.reset()
    reads: list[int | None] = []
    read_seq = scheduler.wakeup.current_seq

    def counted_read() -> int | None:
        reads.append(read_seq())
        return reads[-1]

    scheduler.wakeup.current_seq = counted_read  # type: ignore[method-assign]
    # Idle, the leader stays in one tick's sleep and reads the sequence in it once per
    # sync_interval (the poll fallback) until something wakes it, here a nudge.
    waking = threading.Timer(3.5 * scheduler.sync_interval, scheduler.wakeup.nudge)
    waking.start()
    started = time.monotonic()
    assert scheduler.tick() == 0.0  # the leader slept in its own wait, not in Celery's
    assert time.monotonic() - started >= 3 * scheduler.sync_interval
    waking.join()
    # The sequence is read on the signal's own connection: no pooled store call at all.
    assert 2 <= len(reads) <= 4
    assert None not in reads
    assert store.made_by(main) == Counter()


def test_the_status_reports_the_last_tick_from_the_lease_thread(
    idle_beat: tuple[DatabaseScheduler, CountingStore],
) -> None:
    scheduler, store = idle_beat
    before = datetime.now(UTC)
    scheduler.tick()
    ticked = scheduler._progress[0]
    assert ticked >= before

    def reported() -> bool:
        return any(
            b.beat_id == scheduler.beat_id and b.role == "leader" and b.last_tick == ticked
            for b in store.beats()
        )

    wait_for(reported)
    assert store.made_by("periodic-lease")["record_beat"] >= 1
    assert store.made_by(threading.current_thread().name)["record_beat"] == 0
