"""Live changes reach a running beat within sync_interval + 1 s, without a restart.

A real ``celery beat`` process (stock command, the settings choose DatabaseScheduler), a real
RabbitMQ and a SQLite store; the test changes the store or the settings file and watches the
queues for the entry's messages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kombu import Connection

from scheduling.config.settings import ScheduleEntry
from scheduling.store import RunState, Store
from tests.support.beats import HEARTBEAT, QueueTap, beat_settings_text, start_beat, unique_queues
from tests.support.processes import ManagedProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYNC_INTERVAL = 1.0
BOUND = SYNC_INTERVAL + 1.0
SLACK = 0.5  # scheduling noise on a shared 2-core machine, on top of the spec's bound

CONFIG_ENTRY = """
[schedule.cfg-tick]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
"""


@dataclass
class LiveBeat:
    beat: ManagedProcess
    store: Store
    tap: QueueTap
    queues: dict[str, str]
    settings: Path
    database_url: str
    broker_url: str

    def write_settings(self, schedule: str) -> None:
        text = beat_settings_text(self.database_url, self.broker_url, self.queues, schedule)
        self.settings.write_text(text)


@pytest.fixture
def live(tmp_path: Path, broker_url: str) -> Iterator[LiveBeat]:
    queues = unique_queues()
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    settings = tmp_path / "settings.toml"
    settings.write_text(beat_settings_text(database_url, broker_url, queues, CONFIG_ENTRY))
    beat = start_beat(settings, tmp_path)
    store: Store | None = None
    try:
        beat.wait_for(r"leader: \d+ entries loaded", timeout=60)
        store = Store.open(database_url)
        with QueueTap(broker_url, list(queues.values())) as tap:
            tap.wait_for(
                lambda seen: any(m.entry == "cfg-tick" for m in seen),
                15,
                "cfg-tick",
                context=lambda: beat.output()[-3000:],
            )
            yield LiveBeat(beat, store, tap, queues, settings, database_url, broker_url)
        assert beat.process.poll() is None, beat.output()[-3000:]
        assert "Traceback" not in beat.output(), beat.output()[-3000:]
    finally:
        beat.stop()
        if store is not None:
            store.close()
        with Connection(broker_url) as connection:
            for queue in queues.values():
                connection.default_channel.queue_delete(queue)


def next_second() -> datetime:
    now = datetime.now(UTC)
    return datetime.fromtimestamp(math.ceil(now.timestamp()), UTC)


def every_second(queue: str) -> ScheduleEntry:
    return ScheduleEntry(task=HEARTBEAT, every=timedelta(seconds=1), queue=queue)


def assert_quiet_after(live: LiveBeat, entry: str, since: float) -> None:
    """No message of `entry` arrives later than BOUND after `since` (watched for 2 bounds)."""
    time.sleep(2 * BOUND)  # observing an absence: the only way is to watch for a while
    late = [m.at - since for m in live.tap.messages(entry) if m.at - since > BOUND + SLACK]
    assert late == [], f"{entry} still dispatched {late} s after the change"


def test_an_entry_created_in_the_store_runs_within_the_bound(live: LiveBeat) -> None:
    since = time.monotonic()
    live.store.create_entry("api-new", every_second(live.queues["high"]), next_run_at=next_second())
    seen = live.tap.first_after("api-new", since, timeout=15)
    assert seen.at - since <= BOUND + SLACK
    assert seen.queue == live.queues["high"]


def test_a_changed_entry_moves_queue_within_the_bound(live: LiveBeat) -> None:
    live.store.create_entry(
        "api-move", every_second(live.queues["high"]), next_run_at=next_second()
    )
    live.tap.first_after("api-move", 0, timeout=15)
    since = time.monotonic()
    live.store.replace_entry(
        "api-move", every_second(live.queues["low"]), next_run_at=next_second()
    )
    seen = live.tap.first_after("api-move", since, timeout=15, queue=live.queues["low"])
    assert seen.at - since <= BOUND + SLACK


def test_pause_stops_and_resume_restarts_within_the_bound(live: LiveBeat) -> None:
    since = time.monotonic()
    live.store.set_paused("cfg-tick", True)
    assert_quiet_after(live, "cfg-tick", since)
    since = time.monotonic()
    live.store.set_paused("cfg-tick", False)
    seen = live.tap.first_after("cfg-tick", since, timeout=15)
    assert seen.at - since <= BOUND + SLACK
    # Slots that fell during the pause were not dispatched late on resume.
    slots = [m.slot for m in live.tap.messages("cfg-tick") if m.at >= since]
    assert all(slot >= _iso_utc_after(since) for slot in slots)


def test_a_deleted_entry_stops_within_the_bound(live: LiveBeat) -> None:
    live.store.create_entry(
        "api-gone", every_second(live.queues["high"]), next_run_at=next_second()
    )
    live.tap.first_after("api-gone", 0, timeout=15)
    since = time.monotonic()
    live.store.delete_entry("api-gone")
    assert_quiet_after(live, "api-gone", since)


def test_a_settings_edit_is_synced_and_runs_within_the_bound(live: LiveBeat) -> None:
    since = time.monotonic()
    live.write_settings(
        CONFIG_ENTRY
        + f"""
[schedule.cfg-added]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
queue = "{live.queues["low"]}"
"""
    )
    deadline = since + 15
    while live.store.get_entry("cfg-added") is None:
        assert time.monotonic() < deadline, live.beat.output()[-3000:]
        time.sleep(0.05)
    assert time.monotonic() - since <= BOUND + SLACK
    seen = live.tap.first_after("cfg-added", since, timeout=15)
    assert seen.at - since <= BOUND + 1.0 + SLACK  # plus up to one period to its first slot
    added = live.store.get_entry("cfg-added")
    assert added is not None
    assert added.owner == "config"


def test_an_invalid_settings_edit_changes_nothing(live: LiveBeat) -> None:
    before = live.store.get_entry("cfg-tick")
    # cfg-tick loses its schedule (invalid) while a valid new entry is added: all or nothing.
    live.write_settings(
        '[schedule.cfg-tick]\ntask = "scheduling.tasks.heartbeat.heartbeat"\n'
        '[schedule.cfg-new]\ntask = "scheduling.tasks.heartbeat.heartbeat"\nevery = "1s"\n'
    )
    live.beat.wait_for(r"settings change rejected", timeout=15)
    assert "schedule.cfg-tick" in live.beat.output()
    since = time.monotonic()
    live.tap.first_after("cfg-tick", since, timeout=15)
    after = live.store.get_entry("cfg-tick")
    assert after is not None
    assert before is not None
    assert after.definition == before.definition
    assert live.store.get_entry("cfg-new") is None
    # The next valid edit is taken: here, one that removes every entry (pruned).
    live.write_settings("")
    live.beat.wait_for(r"settings synced: 0 created, 0 updated, 1 pruned", timeout=15)
    assert live.store.get_entry("cfg-tick") is None


def test_dispatched_runs_are_recorded_in_the_ledger(live: LiveBeat) -> None:
    messages = live.tap.wait_for(
        lambda seen: sum(m.entry == "cfg-tick" for m in seen) >= 3, 15, "three cfg-tick runs"
    )
    task_ids = {m.task_id for m in messages if m.entry == "cfg-tick"}
    deadline = time.monotonic() + 10
    while True:
        runs = [live.store.get_run(task_id) for task_id in task_ids]
        if all(run is not None and run.state is RunState.DISPATCHED for run in runs):
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.05)


def _iso_utc_after(since: float) -> str:
    """The wall-clock ISO form (as in periodic_slot) of monotonic instant `since`."""
    wall = datetime.now(UTC) - timedelta(seconds=time.monotonic() - since)
    return wall.replace(microsecond=0).isoformat().replace("+00:00", "Z")
