"""Bulk "run now" claims on both dialects: one transaction, distinct slots, idempotent task ids."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from scheduling.config.settings import ScheduleEntry
from scheduling.store import ManualRun, RunState, SlotClaim, Store
from tests.support.databases import StatementCounter
from tests.support.store_lookups import stored_entry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PING = ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1m")
MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def entries(store: Store) -> Store:
    store.create_entry("ping", PING, next_run_at=T0)
    store.create_entry("pong", PING, next_run_at=T0)
    return store


def requests(count: int, entry: str = "ping", prefix: str = "run") -> list[ManualRun]:
    return [ManualRun(entry, T0, f"{prefix}-{index}", "high") for index in range(count)]


def test_many_runs_at_one_instant_get_consecutive_slots_in_one_round_of_statements(
    entries: Store,
) -> None:
    with StatementCounter() as statements:
        claimed = entries.claim_manual_runs(requests(200))

    assert [run.task_id for run in claimed] == [f"run-{index}" for index in range(200)]
    assert [run.scheduled_for for run in claimed] == [T0 + i * MICROSECOND for i in range(200)]
    assert {(run.state, run.manual, run.queue) for run in claimed} == {
        (RunState.PENDING, True, "high")
    }
    assert len({run.id for run in claimed}) == 200
    assert statements.count <= 8, "a bulk claim must not cost statements per run"
    stored = entries.runs_for_entry("ping", limit=300)
    assert sorted(run.task_id for run in stored) == sorted(run.task_id for run in claimed)
    assert stored_entry(entries, "ping").run_count == 0


def test_unknown_entries_are_left_out_and_the_rest_keep_their_order(entries: Store) -> None:
    batch = [
        ManualRun("pong", T0, "a"),
        ManualRun("ghost", T0, "b"),
        ManualRun("ping", T0, "c"),
        ManualRun("pong", T0, "d"),
    ]

    claimed = entries.claim_manual_runs(batch)

    assert [(run.entry, run.task_id) for run in claimed] == [
        ("pong", "a"),
        ("ping", "c"),
        ("pong", "d"),
    ]
    assert entries.get_run("b") is None
    assert entries.claim_manual_runs([ManualRun("ghost", T0, "e")]) == []


def test_claiming_again_returns_the_existing_rows_unchanged(entries: Store) -> None:
    first = entries.claim_manual_runs(requests(3))
    entries.mark_dispatched(["run-1"], T0 + timedelta(seconds=1))

    again = entries.claim_manual_runs([*requests(4), ManualRun("ping", T0, "run-0")])

    assert [run.task_id for run in again] == ["run-0", "run-1", "run-2", "run-3", "run-0"]
    assert again[0] == first[0]
    assert again[2] == first[2]
    assert again[1].state is RunState.DISPATCHED
    assert again[3].scheduled_for == T0 + 3 * MICROSECOND
    assert len(entries.runs_for_entry("ping", limit=10)) == 4


def test_bulk_claims_step_around_single_claims_and_never_take_a_beat_slot(entries: Store) -> None:
    lease = entries.acquire_lease("beat-a", timedelta(seconds=30), datetime.now(UTC))
    assert lease is not None
    single = entries.claim_manual_run("ping", T0 + MICROSECOND, "single", None)

    claimed = entries.claim_manual_runs(requests(3))

    assert [run.scheduled_for for run in claimed] == [
        T0,
        T0 + 2 * MICROSECOND,
        T0 + 3 * MICROSECOND,
    ]
    assert single.scheduled_for == T0 + MICROSECOND
    slot = SlotClaim("ping", T0, "beat-slot", RunState.PENDING, queue="default")
    won = entries.claim_slots([slot], holder=lease.holder, token=lease.token, next_runs={})
    assert [run.task_id for run in won] == ["beat-slot"]


def test_concurrent_bulk_claims_lose_no_run_and_share_no_slot(entries: Store) -> None:
    threads = 4
    per_thread = 50
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def claim(worker: int) -> None:
        try:
            start.wait(timeout=30)
            for round_index in range(5):
                batch = requests(per_thread // 5, prefix=f"w{worker}-r{round_index}")
                assert len(entries.claim_manual_runs(batch)) == len(batch)
        except BaseException as error:  # handed to the test thread
            errors.append(error)

    workers = [threading.Thread(target=claim, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert errors == []
    stored = entries.runs_for_entry("ping", limit=1000)
    assert len(stored) == threads * per_thread
    assert len({run.scheduled_for for run in stored}) == threads * per_thread


def test_an_empty_request_list_claims_nothing(entries: Store) -> None:
    with StatementCounter() as statements:
        assert entries.claim_manual_runs([]) == []
    assert statements.count == 0


def test_new_task_ids_skip_the_lookup_and_claim_the_same_slots(entries: Store) -> None:
    entries.claim_manual_runs(requests(2))  # run-0, run-1 take T0 and T0 + 1 us
    fresh = [ManualRun("ping", T0, f"fresh-{n}") for n in range(3)] + [
        ManualRun("ghost", T0, "fresh-ghost")
    ]

    claimed = entries.claim_manual_runs(fresh, new_task_ids=True)

    assert [(run.task_id, run.scheduled_for) for run in claimed] == [
        ("fresh-0", T0 + 2 * MICROSECOND),
        ("fresh-1", T0 + 3 * MICROSECOND),
        ("fresh-2", T0 + 4 * MICROSECOND),
    ]
    assert all(run.state is RunState.PENDING and run.manual for run in claimed)
    assert len(entries.runs_for_entry("ping", limit=10)) == 5
