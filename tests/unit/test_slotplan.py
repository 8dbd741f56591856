"""Planning a due entry: catch-up, overlap, max_runs, jitter and expiry, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scheduling.beat.slotplan import CatchupMemo, entry_shape, plan_due_entry, send_time
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.store import EntryRecord, RunState
from scheduling.timing.slots import jitter_offset, slot_task_id
from tests.support.records import entry_record

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings()


def record(next_run_at: datetime | None, run_count: int = 0, **fields: Any) -> EntryRecord:
    definition = ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", **fields)
    return entry_record("job", definition, next_run_at, run_count=run_count)


def plan(rec: EntryRecord, now: datetime, max_catchup: int = 100, unfinished: bool = False):  # type: ignore[no-untyped-def]
    shape = entry_shape(rec.definition, SETTINGS)
    return plan_due_entry(rec, shape, now, max_catchup, unfinished)


def states(result: Any) -> list[RunState]:
    return [claim.state for claim in result.claims]


def test_an_on_time_slot_is_claimed_and_the_entry_moves_on() -> None:
    result = plan(record(T0, every="10s"), T0 + timedelta(milliseconds=5))
    assert states(result) == [RunState.PENDING]
    claim = result.claims[0]
    assert claim.scheduled_for == T0
    assert claim.task_id == slot_task_id("job", T0)
    assert claim.queue == "default"
    assert result.next_run == T0 + timedelta(seconds=10)
    run = result.runs[claim.task_id]
    assert run.scheduled_for == T0
    assert run.expires == T0 + timedelta(milliseconds=5) + timedelta(seconds=10)


def test_catchup_all_dispatches_every_slot_since_the_last_one() -> None:
    result = plan(record(T0, every="1s", catchup="all"), T0 + timedelta(seconds=19.5))
    assert states(result) == [RunState.PENDING] * 20
    assert result.next_run == T0 + timedelta(seconds=20)


def test_catchup_all_is_capped_by_max_catchup_and_the_rest_are_missed() -> None:
    result = plan(record(T0, every="1s", catchup="all"), T0 + timedelta(seconds=19.5), 5)
    assert states(result).count(RunState.PENDING) == 5
    assert result.missed_count == 15
    assert all(c.state is RunState.MISSED for c in result.claims[:5])


def test_catchup_latest_dispatches_the_newest_and_records_the_others_as_missed() -> None:
    result = plan(record(T0, every="1s", catchup="latest"), T0 + timedelta(seconds=9.5))
    assert states(result) == [RunState.MISSED] * 9 + [RunState.PENDING]
    assert result.claims[-1].scheduled_for == T0 + timedelta(seconds=9)


def test_catchup_skip_drops_late_slots_into_the_ledger_as_missed() -> None:
    result = plan(record(T0, every="1m", catchup="skip"), T0 + timedelta(minutes=5, seconds=30))
    # The 5-minute slot is 30 s late: within the on-time window, so it still runs.
    assert states(result) == [RunState.MISSED] * 5 + [RunState.PENDING]
    late = plan(record(T0, every="10m", catchup="skip"), T0 + timedelta(minutes=5))
    assert states(late) == [RunState.MISSED]


def test_misfire_grace_turns_old_slots_into_missed_whatever_the_policy() -> None:
    result = plan(
        record(T0, every="1s", catchup="all", misfire_grace="3s"), T0 + timedelta(seconds=9.5)
    )
    assert states(result).count(RunState.PENDING) == 3
    assert states(result).count(RunState.MISSED) == 7


def test_overlap_skip_records_skipped_while_a_run_is_unfinished() -> None:
    result = plan(record(T0, every="1s", overlap="skip"), T0, unfinished=True)
    assert states(result) == [RunState.SKIPPED]
    assert result.runs == {}
    caught_up = plan(
        record(T0, every="1s", overlap="skip", catchup="all"), T0 + timedelta(seconds=2)
    )
    assert states(caught_up) == [RunState.PENDING, RunState.SKIPPED, RunState.SKIPPED]


def test_max_runs_exhausts_the_entry() -> None:
    result = plan(
        record(T0, run_count=2, every="1s", max_runs=3, catchup="all"), T0 + timedelta(seconds=3)
    )
    assert states(result) == [RunState.PENDING]
    assert result.next_run is None


def test_end_exhausts_the_entry() -> None:
    result = plan(record(T0, every="1m", start=T0, end=T0 + timedelta(seconds=30)), T0)
    assert states(result) == [RunState.PENDING]
    assert result.next_run is None


def test_jitter_delays_the_send_but_not_the_slot_identity() -> None:
    jitter = timedelta(minutes=10)
    rec = record(T0, every="1h", jitter="10m", catchup="skip")
    sent = send_time("job", T0, jitter)
    assert sent == T0 + jitter_offset("job", T0, jitter)
    # Popped at its send time, even minutes after the slot, it is on time, not late.
    result = plan(rec, sent + timedelta(seconds=2))
    assert states(result) == [RunState.PENDING]
    assert result.claims[0].scheduled_for == T0


def test_expires_never_sends_no_expiry() -> None:
    result = plan(record(T0, every="1s", expires="never"), T0)
    (run,) = result.runs.values()
    assert run.expires is None


def test_entries_sharing_a_definition_and_slot_plan_alike_with_a_shared_memo() -> None:
    """A burst plans many entries of one definition due at one slot: the memo shares their
    catch-up arithmetic, and each plan is still the one the entry would get alone."""
    now = T0 + timedelta(seconds=19.5)
    definitions = [
        ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1s", catchup="all"),
        ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="10s", jitter="3s"),
        ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1s", catchup="latest"),
    ]
    shapes = [entry_shape(definition, SETTINGS) for definition in definitions]
    memo: CatchupMemo = {}
    for index in range(12):
        definition, shape = definitions[index % 3], shapes[index % 3]
        first = T0 + timedelta(seconds=index % 2)
        rec = entry_record(f"job-{index}", definition, first)
        shared = plan_due_entry(rec, shape, now, 5, memo=memo)
        alone = plan_due_entry(rec, shape, now, 5)
        assert shared == alone
        assert {claim.entry for claim in shared.claims} == {f"job-{index}"}
    assert len(memo) == 4, "one per unjittered definition and first slot"
