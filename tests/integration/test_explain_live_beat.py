"""Explain against a real beat process: dispatched, beat down, missed after the restart, paused.

The reasons that depend on leadership are only as good as what beat writes through the store,
so here a real ``celery beat`` leads, is killed (no clean release), stays down past a few slots
and is started again; the answers must follow from what it recorded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kombu import Connection

from scheduling.config.loading import load_settings
from scheduling.operations.explain import explain_slot
from scheduling.store import Store
from tests.support.beats import QueueTap, beat_settings_text, start_beat, unique_queues
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENTRY = """
[schedule.tick]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "2s"
catchup = "skip"
queue = "{high}"
"""


def wait_until(instant: datetime) -> None:
    """Poll the clock until `instant` has passed (slots must fall due; nothing else to watch)."""
    deadline = time.monotonic() + (instant - datetime.now(UTC)).total_seconds() + 30
    while datetime.now(UTC) <= instant:
        assert time.monotonic() < deadline, "the clock did not reach the slot"
        time.sleep(0.1)


@pytest.fixture
def settings_path(tmp_path: Path, broker_url: str) -> Iterator[Path]:
    queues = unique_queues()
    path = tmp_path / "settings.toml"
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    path.write_text(
        beat_settings_text(database_url, broker_url, queues, ENTRY.format(**queues), "3s")
    )
    yield path
    with Connection(broker_url) as connection:
        for queue in queues.values():
            connection.default_channel.queue_delete(queue)


def test_explain_follows_a_beat_that_dies_and_comes_back(
    settings_path: Path, tmp_path: Path, broker_url: str
) -> None:
    settings = load_settings(settings_path)
    database_url = settings.app.database_url.get_secret_value()
    queues = list(settings.queues)
    first = start_beat(settings_path, tmp_path, name="beat-1")
    second = None
    try:
        first.wait_for(r"leader: \d+ entries loaded", timeout=60)
        with QueueTap(broker_url, queues) as tap, Store.open(database_url) as store:
            tap.wait_for(lambda seen: any(m.entry == "tick" for m in seen), 20, "tick")
            (sent,) = store.runs_for_entry("tick", limit=1)
            at = sent.scheduled_for + timedelta(seconds=1)  # any instant up to the next slot
            # The message can be in the queue a moment before beat has the confirm and marks it.
            wait_for(
                lambda: (
                    explain_slot(store, settings, "tick", at, datetime.now(UTC)).reason
                    == "dispatched"
                ),
                10,
                "the run marked dispatched",
                interval=0.05,
            )
            dispatched = explain_slot(store, settings, "tick", at, datetime.now(UTC))
            assert dispatched.reason == "dispatched", dispatched
            assert dispatched.slot == sent.scheduled_for
            assert dispatched.facts["task_id"] == sent.task_id

            first.kill()  # no release: the lease lapses on its own
            killed_at = datetime.now(UTC)
            down_slot = killed_at + timedelta(seconds=8)
            wait_until(down_slot + timedelta(seconds=1))
            while_down = explain_slot(store, settings, "tick", down_slot, datetime.now(UTC))
            assert while_down.reason == "beat_down", while_down
            assert while_down.facts["leaderless_until"] is None

            second = start_beat(settings_path, tmp_path, name="beat-2")
            second.wait_for(r"leader: \d+ entries loaded", timeout=60)
            back = datetime.now(UTC)
            tap.first_after("tick", time.monotonic(), timeout=20)
            after = explain_slot(store, settings, "tick", down_slot, datetime.now(UTC))
            assert after.reason == "missed", after
            assert after.facts["rule"] == "catchup_skip"
            assert after.facts["cause"] == "beat_down"
            assert after.facts["leaderless_until"] is not None
            assert datetime.fromisoformat(after.facts["leaderless_until"]) <= back

            store.set_paused("tick", True, actor="token:ops")
            paused_at = datetime.now(UTC)
            wait_until(paused_at + timedelta(seconds=5))  # beat sees a pause within 1 s
            paused = explain_slot(store, settings, "tick", datetime.now(UTC), datetime.now(UTC))
            assert paused.reason == "paused", paused
            assert paused.facts["by"] == "token:ops"
    finally:
        first.stop()
        if second is not None:
            second.stop()
