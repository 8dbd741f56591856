"""settings.toml into the store (sync_config), bulk loading and the change feed; both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import ConfigError
from scheduling.store import RunState, SlotClaim, Store
from tests.support.databases import StatementCounter
from tests.support.store_lookups import Stopwatch, stored_entry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TASK = "scheduling.tasks.heartbeat.heartbeat"
PING = ScheduleEntry(task=TASK, every="30s")
REPORT = ScheduleEntry(task=TASK, cron="0 8 * * *")
PURGE = ScheduleEntry(task=TASK, every="1d")


def test_first_sync_creates_config_entries_with_their_next_runs(store: Store) -> None:
    summary = store.sync_config(
        {"ping": PING, "report": REPORT}, {"ping": T0, "report": T0 + timedelta(hours=1)}
    )

    assert summary.created == ["ping", "report"]
    assert (summary.updated, summary.pruned, summary.unchanged) == ([], [], 0)
    ping = stored_entry(store, "ping")
    assert ping.owner == "config"
    assert ping.definition == PING
    assert ping.next_run_at == T0
    assert stored_entry(store, "report").next_run_at == T0 + timedelta(hours=1)


def test_a_repeated_sync_changes_nothing(store: Store) -> None:
    store.sync_config({"ping": PING, "report": REPORT}, {"ping": T0, "report": T0})
    seq = store.change_seq()
    before = stored_entry(store, "ping")

    summary = store.sync_config(
        {"ping": PING, "report": REPORT}, {"ping": T0 + timedelta(days=9), "report": None}
    )

    assert summary.changed is False
    assert summary.unchanged == 2
    assert store.change_seq() == seq
    assert store.get_entry("ping") == before


def test_a_changed_definition_is_updated_with_its_new_next_run(store: Store) -> None:
    store.sync_config({"ping": PING, "report": REPORT}, {"ping": T0, "report": T0})
    before = stored_entry(store, "ping")
    faster = ScheduleEntry(task=TASK, every="10s")

    summary = store.sync_config(
        {"ping": faster, "report": REPORT},
        {"ping": T0 + timedelta(seconds=10), "report": T0 + timedelta(days=9)},
    )

    assert summary.updated == ["ping"]
    assert summary.unchanged == 1
    ping = stored_entry(store, "ping")
    assert ping.definition == faster
    assert ping.next_run_at == T0 + timedelta(seconds=10)
    assert ping.version == before.version + 1
    assert ping.change_seq > before.change_seq
    assert stored_entry(store, "report").next_run_at == T0, "unchanged rows keep their next run"


def test_removed_config_entries_are_pruned_and_api_entries_kept(store: Store) -> None:
    store.create_entry("adhoc", PURGE, next_run_at=T0)
    store.sync_config({"ping": PING, "report": REPORT}, {})

    summary = store.sync_config({"ping": PING}, {})

    assert summary.pruned == ["report"]
    assert store.get_entry("report") is None
    assert store.get_entry("adhoc") is not None
    assert stored_entry(store, "adhoc").owner == "api"


def test_sync_leaves_pause_flags_alone(store: Store) -> None:
    store.sync_config({"ping": PING}, {"ping": T0})
    store.set_paused("ping", True)

    store.sync_config({"ping": ScheduleEntry(task=TASK, every="5s")}, {"ping": T0})

    assert stored_entry(store, "ping").paused is True


def test_a_config_name_taken_by_an_api_entry_is_a_config_error_and_writes_nothing(
    store: Store,
) -> None:
    store.create_entry("adhoc", PURGE, next_run_at=T0)
    seq = store.change_seq()

    with pytest.raises(ConfigError, match=r"schedule\.adhoc: an entry named 'adhoc'"):
        store.sync_config({"ping": PING, "adhoc": PING}, {})

    assert store.get_entry("ping") is None
    assert stored_entry(store, "adhoc").definition == PURGE
    assert store.change_seq() == seq


def test_changes_since_reports_creates_updates_and_deletes_after_a_seq_only(
    store: Store,
) -> None:
    store.create_entry("old", PING, next_run_at=T0)
    store.create_entry("edited", PING, next_run_at=T0)
    store.create_entry("doomed", PING, next_run_at=T0)
    store.create_entry("paused", PING, next_run_at=T0)
    seen = store.change_seq()

    store.create_entry("new", PING, next_run_at=T0)
    store.replace_entry("edited", REPORT, next_run_at=T0)
    store.delete_entry("doomed")
    store.set_paused("paused", True)
    current, changed, deleted = store.changes_since(seen)

    assert current == store.change_seq() == seen + 4
    assert sorted(entry.name for entry in changed) == ["edited", "new", "paused"]
    assert deleted == ["doomed"]
    assert store.changes_since(current) == (current, [], [])


def test_changes_since_returns_the_rows_as_they_are_now(store: Store) -> None:
    store.create_entry("ping", PING, next_run_at=T0)
    seen = store.change_seq()
    store.replace_entry("ping", REPORT, next_run_at=T0)
    store.replace_entry("ping", PURGE, next_run_at=T0)

    _, changed, _ = store.changes_since(seen)

    assert [entry.definition for entry in changed] == [PURGE]


def test_a_recreated_name_is_a_change_not_a_deletion(store: Store) -> None:
    store.create_entry("ping", PING, next_run_at=T0)
    seen = store.change_seq()
    store.delete_entry("ping")

    _, _, deleted = store.changes_since(seen)
    assert deleted == ["ping"]
    store.create_entry("ping", REPORT, next_run_at=T0)

    _, changed, deleted = store.changes_since(seen)
    assert [entry.name for entry in changed] == ["ping"]
    assert deleted == []


def test_sync_reports_each_changed_row_in_the_feed(store: Store) -> None:
    store.sync_config({"a": PING, "b": PING, "c": PING}, {})
    seen = store.change_seq()

    store.sync_config({"a": PING, "b": REPORT, "d": PURGE}, {})
    current, changed, deleted = store.changes_since(seen)

    assert current == seen + 3
    assert sorted(entry.name for entry in changed) == ["b", "d"]
    assert deleted == ["c"]


def test_claims_do_not_wake_the_change_feed(store: Store) -> None:
    store.create_entry("ping", PING, next_run_at=T0)
    lease = store.acquire_lease("beat-a", timedelta(seconds=10), datetime.now(UTC))
    assert lease is not None
    seen = store.change_seq()

    store.claim_slots(
        [SlotClaim("ping", T0, "t-1", RunState.PENDING)],
        holder="beat-a",
        token=lease.token,
        next_runs={"ping": T0 + timedelta(seconds=30)},
    )

    assert store.changes_since(seen) == (seen, [], [])


def test_bulk_create_counts_new_rows_and_leaves_taken_names_alone(store: Store) -> None:
    store.create_entry("taken", REPORT, next_run_at=None)

    created = store.bulk_create_entries(
        [("taken", PING, T0), ("a", PING, T0), ("b", PING, None), ("a", REPORT, T0)]
    )

    assert created == 2
    assert stored_entry(store, "taken").definition == REPORT
    assert stored_entry(store, "a").definition == PING
    assert stored_entry(store, "b").next_run_at is None
    assert store.count_entries() == 3


@pytest.mark.slow
def test_100k_entries_sync_stream_and_feed_in_bulk(store: Store) -> None:
    # Statement counts prove the paths stay bulk; the wall-time budgets only catch disasters
    # (a shared 2-core CI box under load is several times slower than typical: sync ~2-3 s,
    # stream ~1 s, feed ~1 ms).
    entries = {f"entry-{index:06d}": PING for index in range(100_000)}
    next_runs = {name: T0 for name in entries}

    with StatementCounter() as sync, Stopwatch() as synced:
        summary = store.sync_config(entries, next_runs)
    assert len(summary.created) == 100_000
    assert sync.count <= 110
    assert synced.seconds < 30.0

    with StatementCounter() as stream, Stopwatch() as streamed:
        assert sum(1 for _ in store.all_entries()) == 100_000
    assert stream.count <= 25
    assert streamed.seconds < 20.0

    with StatementCounter() as tick:
        store.change_seq()
    assert tick.count == 1

    seen = store.change_seq()
    store.create_entry("late", REPORT, next_run_at=T0)
    with StatementCounter() as feed:
        _, changed, _ = store.changes_since(seen)
    assert [entry.name for entry in changed] == ["late"]
    assert feed.count <= 3

    with StatementCounter() as resync, Stopwatch() as resynced:
        assert store.sync_config(entries, next_runs).unchanged == 100_000
    assert resync.count <= 3
    assert resynced.seconds < 30.0

    rows = [(f"bulk-{index:06d}", REPORT, T0) for index in range(100_000)]
    with StatementCounter() as bulk, Stopwatch() as loaded:
        assert store.bulk_create_entries(rows) == 100_000
    assert bulk.count <= 110
    assert loaded.seconds < 30.0
