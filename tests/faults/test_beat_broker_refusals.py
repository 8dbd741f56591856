"""A run the broker will not take is that run's problem, not an outage (real beat, real broker).

A stock ``celery beat`` process dispatches two every-second entries into two queues of the
test's own. The test makes the broker refuse one entry's messages (its queue deleted under the
running beat: the mandatory publish comes back unroutable; or a queue that rejects publishes:
nacked).
The other entry keeps its schedule (gaps under 2 s), the refused runs end ``failed`` with the
broker's reason after bounded attempts, and the entry is in error for the API to show.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kombu import Connection, Queue

from scheduling.config.compiler import task_exchange
from scheduling.store import RunState, Store
from tests.support.beats import HEARTBEAT, QueueTap, beat_settings_text, start_beat, unique_queues
from tests.support.processes import ManagedProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEDULE = f"""
[schedule.canary]
task = "{HEARTBEAT}"
every = "1s"
queue = "{{high}}"

[schedule.victim]
task = "{HEARTBEAT}"
every = "1s"
queue = "{{low}}"
"""


@dataclass
class Running:
    beat: ManagedProcess
    store: Store
    tap: QueueTap
    queues: dict[str, str]
    broker_url: str


@pytest.fixture
def running(tmp_path: Path, broker_url: str) -> Iterator[Running]:
    queues = unique_queues()
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    settings = tmp_path / "settings.toml"
    schedule = SCHEDULE.format(high=queues["high"], low=queues["low"])
    settings.write_text(beat_settings_text(database_url, broker_url, queues, schedule))
    beat = start_beat(settings, tmp_path)
    store: Store | None = None
    try:
        beat.wait_for(r"leader: \d+ entries loaded", timeout=60)
        store = Store.open(database_url)
        with QueueTap(broker_url, [queues["high"]]) as tap:
            tap.first_after("canary", 0, timeout=15)
            yield Running(beat, store, tap, queues, broker_url)
        assert beat.process.poll() is None, beat.output()[-3000:]
    finally:
        beat.stop()
        if store is not None:
            store.close()
        with Connection(broker_url) as connection:
            for queue in queues.values():
                connection.default_channel.queue_delete(queue)


def refused_runs(store: Store) -> list[str]:
    return [
        run.error_message or ""
        for run in store.runs_for_entry("victim", limit=50)
        if run.state is RunState.FAILED and run.error_type == "BrokerRefused"
    ]


def assert_refusal_isolated(running: Running, reason: str) -> None:
    since = time.monotonic()
    deadline = since + 20
    while not refused_runs(running.store):
        assert time.monotonic() < deadline, running.beat.output()[-3000:]
        time.sleep(0.1)
    assert reason in refused_runs(running.store)[0]
    assert "victim" in running.store.entry_faults()
    # The canary kept its schedule the whole time: no gap of 2 s or more between its messages.
    time.sleep(3)  # watch the schedule for a few more slots after the first failure
    arrivals = [m.at for m in running.tap.messages("canary") if m.at >= since - 1]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) >= 5, arrivals
    assert max(gaps) < 2.0, gaps
    assert "broker unreachable" not in running.beat.output()


def test_a_queue_deleted_under_beat_fails_its_runs_and_the_others_go_on(
    running: Running,
) -> None:
    with Connection(running.broker_url) as connection:
        connection.default_channel.queue_delete(running.queues["low"])
    assert_refusal_isolated(running, "unroutable")


def test_a_queue_that_rejects_publishes_fails_its_runs_and_the_others_go_on(
    running: Running,
) -> None:
    """The reject-publish overflow a policy would set, as queue arguments (portable to any
    test broker): the broker nacks every message for the queue."""
    low = running.queues["low"]
    with Connection(running.broker_url) as connection:
        channel = connection.default_channel
        channel.queue_delete(low)
        full = Queue(
            low,
            task_exchange(),
            routing_key=low,
            durable=True,
            queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        full.declare(channel=channel)
    assert_refusal_isolated(running, "nacked")
