"""The run ledger on both dialects: exactly-once fenced claims, dispatch, worker updates, purge."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import EntryNotFound, LeaseLost
from scheduling.store import EntryFault, LeaseRecord, RunRecord, RunState, SlotClaim, Store
from tests.support.databases import StatementCounter
from tests.support.store_lookups import Stopwatch, stored_entry, stored_run

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PING = ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1m")
HOLDER = "beat-a"


def slot(entry: str, index: int, state: RunState = RunState.PENDING) -> SlotClaim:
    scheduled_for = T0 + index * MINUTE
    return SlotClaim(entry, scheduled_for, f"{entry}-{index}", state, queue="default")


def lead(store: Store, holder: str = HOLDER) -> LeaseRecord:
    lease = store.acquire_lease(holder, timedelta(seconds=30), datetime.now(UTC))
    assert lease is not None
    return lease


def claim(
    store: Store,
    lease: LeaseRecord,
    claims: Sequence[SlotClaim],
    next_runs: dict[str, datetime | None] | None = None,
) -> list[RunRecord]:
    return store.claim_slots(
        claims, holder=lease.holder, token=lease.token, next_runs=next_runs or {}
    )


@pytest.fixture
def lease(store: Store) -> LeaseRecord:
    store.create_entry("ping", PING, next_run_at=T0)
    store.create_entry("pong", PING, next_run_at=T0)
    return lead(store)


def test_a_claim_inserts_pending_rows_and_advances_the_entry(
    store: Store, lease: LeaseRecord
) -> None:
    before = datetime.now(UTC)

    inserted = claim(store, lease, [slot("ping", 0), slot("ping", 1)], {"ping": T0 + 2 * MINUTE})

    assert [(run.entry, run.scheduled_for, run.task_id) for run in inserted] == [
        ("ping", T0, "ping-0"),
        ("ping", T0 + MINUTE, "ping-1"),
    ]
    run = inserted[0]
    assert run.state is RunState.PENDING
    assert run.queue == "default"
    assert run.manual is False
    assert run.claimed_at >= before - timedelta(seconds=1)
    assert (run.dispatched_at, run.started_at, run.finished_at) == (None, None, None)
    assert store.get_run("ping-0") == run
    entry = stored_entry(store, "ping")
    assert entry.next_run_at == T0 + 2 * MINUTE
    assert entry.last_slot == T0 + MINUTE
    assert entry.run_count == 2
    assert stored_entry(store, "pong").run_count == 0


def test_a_second_claim_of_a_slot_returns_nothing_and_counts_nothing(
    store: Store, lease: LeaseRecord
) -> None:
    claim(store, lease, [slot("ping", 0)], {"ping": T0 + MINUTE})

    again = claim(store, lease, [slot("ping", 0), slot("ping", 1)], {"ping": T0 + 2 * MINUTE})

    assert [run.task_id for run in again] == ["ping-1"]
    assert stored_entry(store, "ping").run_count == 2
    assert store.count_runs() == 2


def test_the_same_slot_twice_in_one_call_is_inserted_once(store: Store, lease: LeaseRecord) -> None:
    inserted = claim(store, lease, [slot("ping", 0), slot("ping", 0)])

    assert len(inserted) == 1
    assert stored_entry(store, "ping").run_count == 1


def test_missed_and_skipped_slots_are_recorded_finished_and_not_counted(
    store: Store, lease: LeaseRecord
) -> None:
    inserted = claim(
        store,
        lease,
        [slot("ping", 0, RunState.MISSED), slot("ping", 1, RunState.SKIPPED), slot("ping", 2)],
    )

    assert [run.state for run in inserted] == [
        RunState.MISSED,
        RunState.SKIPPED,
        RunState.PENDING,
    ]
    assert inserted[0].finished_at is not None
    assert inserted[1].finished_at is not None
    entry = stored_entry(store, "ping")
    assert entry.run_count == 1
    assert entry.last_slot == T0 + 2 * MINUTE


def test_last_slot_never_moves_backwards(store: Store, lease: LeaseRecord) -> None:
    claim(store, lease, [slot("ping", 5)])

    claim(store, lease, [slot("ping", 3)])

    assert stored_entry(store, "ping").last_slot == T0 + 5 * MINUTE


def test_a_claim_with_a_stale_token_raises_lease_lost_and_writes_nothing(
    store: Store, lease: LeaseRecord
) -> None:
    store.release_lease(lease.holder, lease.token)
    newer = lead(store, "beat-b")
    assert newer.token == lease.token + 1
    before = stored_entry(store, "ping")

    with pytest.raises(LeaseLost, match="'beat-a' with token"):
        claim(store, lease, [slot("ping", 0)], {"ping": T0 + MINUTE})

    assert store.count_runs() == 0
    assert store.get_entry("ping") == before


def test_a_claim_by_a_holder_without_the_lease_is_refused(store: Store, lease: LeaseRecord) -> None:
    with pytest.raises(LeaseLost):
        store.claim_slots([slot("ping", 0)], holder="intruder", token=lease.token, next_runs={})
    assert store.count_runs() == 0


def test_a_claim_given_now_refuses_a_lease_expired_on_the_database_clock(
    store: Store, lease: LeaseRecord
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    expired = store.acquire_lease(lease.holder, timedelta(seconds=30), past)
    assert expired is not None
    with pytest.raises(LeaseLost, match="expired"):
        store.claim_slots(
            [slot("ping", 0)],
            holder=lease.holder,
            token=lease.token,
            next_runs={},
            now=past,  # the caller's clock says the lease is fine; the database's does not
        )
    assert store.count_runs() == 0


def test_concurrent_claims_of_the_same_slots_insert_each_exactly_once(
    store_url: str, store: Store, lease: LeaseRecord
) -> None:
    claims = [slot(entry, index) for index in range(300) for entry in ("ping", "pong")]
    stores = [Store.open(store_url) for _ in range(3)]
    won: list[list[RunRecord]] = [[] for _ in stores]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def race(position: int) -> None:
        try:
            barrier.wait(timeout=30)
            for start in range(0, len(claims), 20):
                won[position].extend(claim(stores[position], lease, claims[start : start + 20]))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for opened in stores:
        opened.close()

    assert errors == []
    task_ids = [run.task_id for runs in won for run in runs]
    assert sorted(task_ids) == sorted(claim.task_id for claim in claims)
    assert store.count_runs() == len(claims)
    assert stored_entry(store, "ping").run_count == 300


CLAIM_IN_PROCESS = """
import sys
from datetime import UTC, datetime, timedelta
from scheduling.store import RunState, SlotClaim, Store
url, holder, token = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
claims = [
    SlotClaim("ping", t0 + timedelta(minutes=i), f"ping-{i}", RunState.PENDING)
    for i in range(400)
]
with Store.open(url) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    won = 0
    for start in range(0, len(claims), 10):
        won += len(store.claim_slots(claims[start:start + 10], holder=holder, token=token,
                                     next_runs={}))
    print(won, flush=True)
"""


def test_concurrent_claims_from_two_processes_insert_each_exactly_once(
    store_url: str, store: Store, lease: LeaseRecord
) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM_IN_PROCESS, store_url, lease.holder, str(lease.token)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    results = [process.communicate("go\n", timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], results
    assert sum(int(out) for out, _ in results) == 400
    assert store.count_runs() == 400
    assert stored_entry(store, "ping").run_count == 400


def test_10k_claims_in_one_call_stay_bulk(store: Store) -> None:
    names = [f"entry-{index:05d}" for index in range(10_000)]
    store.bulk_create_entries([(name, PING, T0) for name in names])
    lease = lead(store)
    claims = [SlotClaim(name, T0, f"{name}-0", RunState.PENDING, "default") for name in names]

    with StatementCounter() as statements, Stopwatch() as elapsed:
        inserted = claim(store, lease, claims, dict.fromkeys(names, T0 + MINUTE))

    assert len(inserted) == 10_000
    assert stored_entry(store, "entry-09999").next_run_at == T0 + MINUTE
    # Chunks of 2000, not rows: one lease read, ~5 inserts (+5 id reads and 5 existence
    # checks on SQLite), ~5 grouped entry updates.
    assert statements.count <= 25
    # Typically ~0.25 s on SQLite and ~1 s on PostgreSQL; these budgets only catch disasters
    # on a loaded 2-core CI box.
    assert elapsed.seconds < (5.0 if store.dialect == "sqlite" else 15.0)


def test_mark_dispatched_moves_pending_runs_only(store: Store, lease: LeaseRecord) -> None:
    claim(store, lease, [slot("ping", 0), slot("ping", 1), slot("ping", 2, RunState.MISSED)])
    store.record_run_started("ping-1", "worker-1", T0 + timedelta(seconds=1))
    at = T0 + timedelta(seconds=2)

    store.mark_dispatched(["ping-0", "ping-1", "ping-2", "unknown"], at)

    first, second, missed = (stored_run(store, f"ping-{i}") for i in range(3))
    assert (first.state, first.dispatched_at) == (RunState.DISPATCHED, at)
    assert (second.state, second.dispatched_at) == (RunState.STARTED, at)
    assert (missed.state, missed.dispatched_at) == (RunState.MISSED, None)


def test_pending_runs_lists_claimed_but_unconfirmed_runs_oldest_first(
    store: Store, lease: LeaseRecord
) -> None:
    claim(store, lease, [slot("ping", index) for index in range(5)])
    claim(store, lease, [slot("pong", 0, RunState.SKIPPED)])
    store.mark_dispatched(["ping-1"], T0)

    pending = store.pending_runs()

    assert [run.task_id for run in pending] == ["ping-0", "ping-2", "ping-3", "ping-4"]
    assert [run.task_id for run in store.pending_runs(limit=2)] == ["ping-0", "ping-2"]
    assert store.pending_runs(older_than=pending[0].claimed_at) == []
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert len(store.pending_runs(older_than=later)) == 4


def test_a_manual_run_is_pending_and_never_takes_a_slot(store: Store, lease: LeaseRecord) -> None:
    manual = store.claim_manual_run("ping", T0, "manual-1", "high")

    assert manual.manual is True
    assert manual.state is RunState.PENDING
    assert (manual.scheduled_for, manual.queue) == (T0, "high")
    assert [run.task_id for run in claim(store, lease, [slot("ping", 0)])] == ["ping-0"]
    entry = stored_entry(store, "ping")
    assert entry.run_count == 1
    assert entry.last_slot == T0


def test_manual_runs_are_idempotent_per_task_id_and_may_share_an_instant(
    store: Store, lease: LeaseRecord
) -> None:
    first = store.claim_manual_run("ping", T0, "manual-1", None)

    assert store.claim_manual_run("ping", T0, "manual-1", None) == first
    second = store.claim_manual_run("ping", T0, "manual-2", None)
    assert second.task_id == "manual-2"
    assert second.scheduled_for > first.scheduled_for
    assert stored_entry(store, "ping").run_count == 0


def test_a_manual_run_of_an_unknown_entry_raises_entry_not_found(store: Store) -> None:
    with pytest.raises(EntryNotFound, match="'ghost'"):
        store.claim_manual_run("ghost", T0, "manual-1", None)


def test_has_unfinished_run_follows_the_run_state(store: Store, lease: LeaseRecord) -> None:
    assert store.has_unfinished_run("ping") is False
    claim(store, lease, [slot("ping", 0, RunState.SKIPPED)])
    assert store.has_unfinished_run("ping") is False

    claim(store, lease, [slot("ping", 1)])
    assert store.has_unfinished_run("ping") is True
    store.mark_dispatched(["ping-1"], T0)
    assert store.has_unfinished_run("ping") is True
    store.record_run_started("ping-1", "worker-1", T0)
    assert store.has_unfinished_run("ping") is True
    store.record_run_retry("ping-1", "TimeoutError", "slow", T0)
    assert store.has_unfinished_run("ping") is True
    store.record_run_finished("ping-1", RunState.SUCCEEDED, T0 + MINUTE)
    assert store.has_unfinished_run("ping") is False
    assert store.has_unfinished_run("pong") is False


def test_record_run_started_is_none_for_a_task_periodic_did_not_send(store: Store) -> None:
    assert store.record_run_started("not-ours", "worker-1", T0) is None


def test_a_run_goes_started_retry_started_succeeded(store: Store, lease: LeaseRecord) -> None:
    claim(store, lease, [slot("ping", 0)])
    store.mark_dispatched(["ping-0"], T0)

    started = store.record_run_started("ping-0", "worker-1", T0 + timedelta(seconds=1))
    assert started is not None
    assert (started.state, started.hostname) == (RunState.STARTED, "worker-1")
    assert started.started_at == T0 + timedelta(seconds=1)

    store.record_run_retry("ping-0", "ConnectionError", "refused", T0 + timedelta(seconds=2))
    retried = stored_run(store, "ping-0")
    assert (retried.state, retried.retries) == (RunState.RETRY, 1)
    assert (retried.error_type, retried.error_message) == ("ConnectionError", "refused")

    restarted = store.record_run_started("ping-0", "worker-2", T0 + timedelta(seconds=5))
    assert restarted is not None
    assert restarted.state is RunState.STARTED
    assert restarted.hostname == "worker-2"
    store.record_run_finished("ping-0", RunState.SUCCEEDED, T0 + timedelta(seconds=7))
    done = stored_run(store, "ping-0")
    assert done.state is RunState.SUCCEEDED
    assert done.finished_at == T0 + timedelta(seconds=7)
    assert done.runtime == pytest.approx(2.0)
    assert done.retries == 1


def test_a_finished_run_is_never_moved_back(store: Store, lease: LeaseRecord) -> None:
    claim(store, lease, [slot("ping", 0)])
    store.record_run_finished(
        "ping-0",
        RunState.FAILED,
        T0,
        runtime=1.5,
        error_type="ValueError",
        error_message="bad input",
    )

    late_start = store.record_run_started("ping-0", "worker-9", T0 + MINUTE)
    store.record_run_retry("ping-0", "X", "y", T0 + MINUTE)
    store.record_run_finished("ping-0", RunState.SUCCEEDED, T0 + 2 * MINUTE)

    assert late_start is not None
    assert late_start.state is RunState.FAILED
    run = stored_run(store, "ping-0")
    assert (run.state, run.runtime, run.finished_at) == (RunState.FAILED, 1.5, T0)
    assert (run.error_type, run.error_message, run.hostname) == ("ValueError", "bad input", None)


def test_finishing_with_an_unfinished_state_is_a_programming_error(store: Store) -> None:
    with pytest.raises(ValueError, match="'started' is not a finished state"):
        store.record_run_finished("ping-0", RunState.STARTED, T0)


def test_runs_for_entry_pages_newest_first(store: Store, lease: LeaseRecord) -> None:
    claim(store, lease, [slot("ping", index) for index in range(5)] + [slot("pong", 0)])

    first = store.runs_for_entry("ping", limit=2)
    second = store.runs_for_entry("ping", before_id=first[-1].id, limit=2)
    third = store.runs_for_entry("ping", before_id=second[-1].id, limit=2)

    assert [run.task_id for run in first + second + third] == [
        "ping-4",
        "ping-3",
        "ping-2",
        "ping-1",
        "ping-0",
    ]
    assert [run.task_id for run in store.recent_runs(limit=2)] == ["pong-0", "ping-4"]


def test_last_run_skips_missed_and_skipped_slots(store: Store, lease: LeaseRecord) -> None:
    assert store.last_run("ping") is None
    claim(store, lease, [slot("ping", 0), slot("ping", 1, RunState.MISSED)])
    claim(store, lease, [slot("ping", 2, RunState.SKIPPED)])

    last = store.last_run("ping")

    assert last is not None
    assert last.task_id == "ping-0"


def test_latest_runs_gives_each_entrys_newest_and_last_dispatched_run_in_one_query(
    store: Store, lease: LeaseRecord
) -> None:
    store.create_entry("idle", PING, next_run_at=T0)
    claim(
        store,
        lease,
        [slot("ping", 0), slot("ping", 1, RunState.MISSED), slot("pong", 0, RunState.SKIPPED)],
    )
    with StatementCounter() as counter:
        latest = store.latest_runs(["ping", "pong", "idle", "unknown"])
    assert counter.count == 1
    assert set(latest) == {"ping", "pong"}
    newest, last = latest["ping"]
    assert (newest.task_id, newest.state) == ("ping-1", RunState.MISSED)
    assert last is not None
    assert last.task_id == "ping-0"
    newest, last = latest["pong"]
    assert newest.task_id == "pong-0"
    assert last is None


def test_an_entry_snapshot_is_its_row_newest_and_last_dispatched_run_and_fault_in_one_statement(
    store: Store, lease: LeaseRecord
) -> None:
    store.create_entry("idle", PING, next_run_at=T0)
    claim(store, lease, [slot("ping", 0), slot("ping", 1, RunState.MISSED), slot("pong", 0)])
    fault = EntryFault("ping", "OverflowError: boom", 2, T0, T0 + MINUTE)
    store.record_entry_faults([fault])

    with StatementCounter() as counter:
        snapshot = store.entry_snapshot("ping")
    assert counter.count == 1
    assert snapshot is not None
    assert snapshot.record == store.get_entry("ping")
    assert snapshot.newest is not None
    assert snapshot.last is not None
    assert (snapshot.newest.task_id, snapshot.newest.state) == ("ping-1", RunState.MISSED)
    assert snapshot.last == store.get_run("ping-0")
    assert snapshot.fault == fault

    idle = store.entry_snapshot("idle")
    assert idle is not None
    assert (idle.newest, idle.last, idle.fault) == (None, None, None)
    assert store.entry_snapshot("unknown") is None


def test_runs_between_selects_by_slot_time_half_open(store: Store, lease: LeaseRecord) -> None:
    claim(store, lease, [slot("ping", index) for index in range(5)] + [slot("pong", 2)])

    found = store.runs_between(T0 + MINUTE, T0 + 3 * MINUTE)

    assert [run.task_id for run in found] == ["ping-1", "ping-2", "pong-2"]


def test_count_runs_by_state(store: Store, lease: LeaseRecord) -> None:
    claim(store, lease, [slot("ping", 0), slot("ping", 1), slot("ping", 2, RunState.MISSED)])

    assert store.count_runs() == 3
    assert store.count_runs(state=RunState.PENDING) == 2
    assert store.count_runs(state=RunState.MISSED) == 1
    assert store.count_runs(state=RunState.SUCCEEDED) == 0


def test_purge_deletes_old_finished_runs_in_batches_and_keeps_the_rest(
    store: Store, lease: LeaseRecord
) -> None:
    claim(store, lease, [slot("ping", index) for index in range(30)])
    for index in range(25):
        store.record_run_finished(f"ping-{index}", RunState.SUCCEEDED, T0)
    store.record_run_finished("ping-25", RunState.FAILED, T0 + timedelta(days=30))
    store.record_run_started("ping-26", "worker-1", T0)

    purged = store.purge_runs(T0 + timedelta(days=1), batch_size=7)

    assert purged == 25
    left = sorted(run.task_id for run in store.recent_runs(limit=100))
    assert left == [f"ping-{index}" for index in range(25, 30)]
    assert store.purge_runs(T0 + timedelta(days=1), batch_size=7) == 0


def test_record_delivery_counts_per_task_id(store: Store) -> None:
    assert [store.record_delivery("task-a") for _ in range(3)] == [1, 2, 3]
    assert store.record_delivery("task-b") == 1

    store.purge_runs(datetime.now(UTC) + timedelta(seconds=1))

    assert store.record_delivery("task-a") == 1


def test_hourly_counts_tell_late_successes_apart(store: Store, lease: LeaseRecord) -> None:
    """The dashboard's 24-hour strip: a success dispatched past the threshold counts as late."""
    claim(store, lease, [slot("ping", 0), slot("ping", 1), slot("ping", 2)])
    lags = {0: 2, 1: 90, 2: 90}  # seconds from slot to dispatch
    for index, lag in lags.items():
        store.mark_dispatched([f"ping-{index}"], T0 + index * MINUTE + timedelta(seconds=lag))
    for index, state in ((0, RunState.SUCCEEDED), (1, RunState.SUCCEEDED), (2, RunState.FAILED)):
        store.record_run_finished(f"ping-{index}", state, T0 + 5 * MINUTE)

    late = store.hourly_run_counts(["ping"], T0 - MINUTE, late_after=timedelta(seconds=30))
    plain = store.hourly_run_counts(["ping"], T0 - MINUTE)

    assert late == {"ping": {"2026-03-01 08": {"succeeded": 1, "late": 1, "failed": 1}}}
    assert plain == {"ping": {"2026-03-01 08": {"succeeded": 2, "failed": 1}}}
