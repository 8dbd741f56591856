"""The broker stops for 20 s under a running beat: beat stays up and catches up per policy.

Uses a dedicated throwaway RabbitMQ node (`rabbit_node`), never the session broker. Three
1-second entries differ only in their catch-up policy. Afterwards the ledger must account for
every slot of every entry (one row per second, none twice) and each entry's outage slots must
have been dispatched or recorded as missed exactly as its policy says.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from project.devtools.localbroker import LocalRabbitNode
from scheduling.config.loading import load_settings
from scheduling.operations.explain import explain_slot
from scheduling.store import RunRecord, RunState, Store
from tests.support.beats import QueueTap, beat_settings_text, start_beat, unique_queues

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE = 20.0
ENTRIES = """
[schedule.out-all]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
catchup = "all"
queue = "{high}"

[schedule.out-latest]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
catchup = "latest"
queue = "{default}"

[schedule.out-grace]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
catchup = "all"
misfire_grace = "5s"
queue = "{low}"
"""


def ledger(store: Store, entry: str) -> list[RunRecord]:
    return sorted(store.runs_for_entry(entry, limit=1000), key=lambda run: run.scheduled_for)


def assert_every_slot_once(runs: list[RunRecord]) -> None:
    slots = [run.scheduled_for for run in runs]
    assert len(slots) == len(set(slots)), "a slot has two ledger rows"
    expected = int((slots[-1] - slots[0]).total_seconds()) + 1
    assert len(slots) == expected, f"{expected - len(slots)} slots missing from the ledger"


def test_beat_rides_out_a_broker_outage(rabbit_node: LocalRabbitNode, tmp_path: Path) -> None:
    queues = unique_queues()
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    settings = tmp_path / "settings.toml"
    schedule = ENTRIES.format(**queues)
    settings.write_text(beat_settings_text(database_url, rabbit_node.url, queues, schedule))
    beat = start_beat(settings, tmp_path)
    store = Store.open(database_url)
    try:
        with QueueTap(rabbit_node.url, list(queues.values())) as tap:
            beat.wait_for(r"leader: \d+ entries loaded", timeout=60)
            tap.wait_for(lambda seen: len(seen) >= 9, 30, "the first runs of all three entries")

            # The outage starts when the node has stopped, not when stopping began: a graceful
            # stop takes seconds under load, and beat rightly keeps publishing until then.
            rabbit_node.stop()
            down_at = datetime.now(UTC)
            beat.wait_for(r"broker unreachable", timeout=15)
            time.sleep(max(0.0, OUTAGE - (datetime.now(UTC) - down_at).total_seconds()))
            rabbit_node.start()
            up_at = datetime.now(UTC)
            beat.wait_for(r"broker back", timeout=30)
            since = time.monotonic()
            for entry in ("out-all", "out-latest", "out-grace"):
                tap.first_after(entry, since, timeout=30)
            time.sleep(3)
            assert beat.process.poll() is None, beat.output()[-3000:]
            beat.stop()
            time.sleep(1)
            seen = {m.task_id for m in tap.messages()}

        output = beat.output()
        assert output.count("broker unreachable") == 1, output[-3000:]
        assert output.count("broker back") == 1, output[-3000:]
        assert "Traceback" not in output, output[-3000:]

        outage = (down_at + timedelta(seconds=1), up_at - timedelta(seconds=1))

        def during(runs: list[RunRecord]) -> list[RunRecord]:
            return [run for run in runs if outage[0] <= run.scheduled_for <= outage[1]]

        every = ledger(store, "out-all")
        assert_every_slot_once(every)
        assert {run.state for run in every[:-1]} == {RunState.DISPATCHED}
        assert {run.task_id for run in every[:-1]} <= seen, "a dispatched run never arrived"
        assert len(during(every)) >= OUTAGE - 3

        latest = ledger(store, "out-latest")
        assert_every_slot_once(latest)
        missed = [run for run in during(latest) if run.state is RunState.MISSED]
        sent = [run for run in during(latest) if run.state is not RunState.MISSED]
        assert len(missed) >= OUTAGE - 5
        # At most the slot claimed as the outage began (republished after) and the newest one.
        assert len(sent) <= 2, [(run.scheduled_for, run.state) for run in sent]

        grace = ledger(store, "out-grace")
        assert_every_slot_once(grace)
        for run in during(grace):
            # Missed means: older than misfire_grace when beat got to it after the outage
            # (claimed late, or claimed on time but still unconfirmed when the grace ran out).
            late = run.claimed_at - run.scheduled_for > timedelta(seconds=5)
            late = late or run.error_type == "MisfireGrace"
            assert late == (run.state is RunState.MISSED), (run.scheduled_for, run.state)
        assert sum(run.state is RunState.MISSED for run in during(grace)) >= OUTAGE - 8
        # Caught up after the outage: only the slots within misfire_grace (5 s) of recovery.
        caught_up = [
            run
            for run in grace
            if run.state is RunState.DISPATCHED
            and run.claimed_at - run.scheduled_for > timedelta(seconds=1)
        ]
        assert 4 <= len(caught_up) <= 6, [(run.scheduled_for, run.claimed_at) for run in caught_up]

        # The leader recorded the outage, and "why did it not run?" names it.
        middle = down_at + timedelta(seconds=OUTAGE / 2)
        (recorded,) = store.outages_at("broker", middle)
        assert recorded.started_at - down_at < timedelta(seconds=10)
        assert recorded.ended_at is not None
        assert recorded.ended_at - up_at < timedelta(seconds=30)
        answer = explain_slot(store, load_settings(settings), "out-latest", middle, up_at)
        assert (answer.reason, answer.facts["cause"]) == ("missed", "broker_down"), answer
    finally:
        beat.stop()
        store.close()
