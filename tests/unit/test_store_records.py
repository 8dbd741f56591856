"""Store records and run states: the pure parts of `scheduling.store`."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest

import scheduling.store
from scheduling.config.settings import ScheduleEntry
from scheduling.store import (
    FINISHED_STATES,
    UNFINISHED_STATES,
    EntryRecord,
    RunRecord,
    RunState,
    SyncSummary,
)
from tests.support.records import entry_record

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PING = ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1m")


def entry(definition: ScheduleEntry = PING, *, paused: bool = False) -> EntryRecord:
    return entry_record("ping", definition, T0, paused=paused)


def run(state: RunState) -> RunRecord:
    return RunRecord(
        id=1,
        entry="ping",
        scheduled_for=T0,
        task_id="t",
        state=state,
        manual=False,
        queue=None,
        claimed_at=T0,
        dispatched_at=None,
        started_at=None,
        finished_at=None,
        runtime=None,
        hostname=None,
        error_type=None,
        error_message=None,
        retries=0,
    )


def test_the_public_api_is_exported_sorted() -> None:
    # ruff's isort-style order (RUF022): constants first, then classes, each alphabetical.
    exported = scheduling.store.__all__
    assert exported == sorted(exported, key=lambda name: (not name.isupper(), name))
    for name in scheduling.store.__all__:
        assert hasattr(scheduling.store, name)


def test_finished_and_unfinished_states_partition_every_state() -> None:
    assert set(RunState) == FINISHED_STATES | UNFINISHED_STATES
    assert not FINISHED_STATES & UNFINISHED_STATES
    assert {state.value for state in UNFINISHED_STATES} == {
        "pending",
        "dispatched",
        "started",
        "retry",
    }


@pytest.mark.parametrize("state", list(RunState))
def test_a_run_is_finished_exactly_in_a_finished_state(state: RunState) -> None:
    assert run(state).finished is (state in FINISHED_STATES)


def test_an_entry_is_active_when_enabled_and_not_paused() -> None:
    disabled = PING.model_copy(update={"enabled": False})

    assert entry().active is True
    assert entry(paused=True).active is False
    assert entry(disabled).active is False


def test_records_are_frozen() -> None:
    record = entry()
    with pytest.raises(FrozenInstanceError):
        record.paused = True  # type: ignore[misc]


def test_a_sync_summary_knows_whether_anything_changed() -> None:
    assert SyncSummary(created=[], updated=[], pruned=[], unchanged=3).changed is False
    assert SyncSummary(created=[], updated=[], pruned=["old"], unchanged=0).changed is True
