"""A beat dies after claiming a slot and before publishing it: the next leader publishes it once.

The crash is real: a beat process whose publisher exits the process the moment it is handed
claimed slots (`tests.support.crashing_beat`), leaving PENDING ledger rows and an unreleased lease.
A normal beat then takes over when the lease expires and must publish exactly those task ids,
each exactly once, and never claim the slots again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from kombu import Connection

from scheduling.store import RunState, Store
from tests.support.beats import QueueTap, beat_settings_text, start_beat, unique_queues
from tests.support.crashing_beat import CRASH_EXIT_CODE, CRASH_FILE_ENV
from tests.support.processes import CELERY, ManagedProcess, clean_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRY = """
[schedule.crash-tick]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
catchup = "all"
queue = "{queue}"
"""


def test_a_claimed_but_unpublished_slot_is_published_once_by_the_next_leader(
    tmp_path: Path, broker_url: str
) -> None:
    queues = unique_queues()
    database_url = f"sqlite:///{tmp_path / 'periodic.db'}"
    settings = tmp_path / "settings.toml"
    settings.write_text(
        beat_settings_text(database_url, broker_url, queues, ENTRY.format(queue=queues["high"]))
    )
    crash_file = tmp_path / "crashed-task-ids.json"
    env = clean_env(
        {
            "PERIODIC_SETTINGS": str(settings),
            "PYTHONPATH": str(REPO_ROOT),
            CRASH_FILE_ENV: str(crash_file),
        }
    )
    argv = [
        *CELERY,
        "beat",
        "-l",
        "INFO",
        "-S",
        "tests.support.crashing_beat:CrashBetweenClaimAndPublish",
    ]
    crashing = ManagedProcess("crashing-beat", argv, tmp_path, env)
    survivor: ManagedProcess | None = None
    try:
        with QueueTap(broker_url, [queues["high"]]) as tap:
            assert crashing.process.wait(60) == CRASH_EXIT_CODE, crashing.output()[-3000:]
            crashed_ids = json.loads(crash_file.read_text())
            assert crashed_ids
            with Store.open(database_url) as store:
                for task_id in crashed_ids:
                    run = store.get_run(task_id)
                    assert run is not None
                    assert run.state is RunState.PENDING

            survivor = start_beat(settings, tmp_path, name="survivor")
            survivor.wait_for(r"republished \d+ claimed but unconfirmed runs", timeout=30)
            tap.wait_for(
                lambda seen: {m.task_id for m in seen} >= set(crashed_ids), 15, "the crashed slots"
            )
            tap.wait_for(lambda seen: len(seen) >= len(crashed_ids) + 3, 15, "later slots")
            survivor.stop()
            time.sleep(1)
            messages = tap.messages("crash-tick")

        per_task = Counter(m.task_id for m in messages)
        for task_id in crashed_ids:
            assert per_task[task_id] == 1, f"{task_id} published {per_task[task_id]} times"
        per_slot = Counter(m.slot for m in messages)
        assert set(per_slot.values()) == {1}
        with Store.open(database_url) as store:
            for task_id in crashed_ids:
                run = store.get_run(task_id)
                assert run is not None
                assert run.state is RunState.DISPATCHED
    finally:
        crashing.stop()
        if survivor is not None:
            survivor.stop()
        with Connection(broker_url) as connection:
            for queue in queues.values():
                connection.default_channel.queue_delete(queue)
