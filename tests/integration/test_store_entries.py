"""Store entries on SQLite and PostgreSQL: CRUD, ownership rules, paging, streaming, schema."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import ConfigOwnedEntry, EntryExists, EntryNotFound, StoreError
from scheduling.store import SCHEMA_VERSION, QueueMatch, RunState, SlotClaim, Store
from scheduling.store import rows as store_rows
from tests.support.store_lookups import stored_entry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
EVERY_MINUTE = ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1m")
DAILY = ScheduleEntry(
    task="scheduling.tasks.heartbeat.heartbeat",
    cron="0 8 * * mon-fri",
    timezone="Europe/Berlin",
    kwargs={"recipients": ["ops@example.com"]},
    misfire_grace="1h",
)


def test_create_then_get_round_trips_every_field(store: Store) -> None:
    created = store.create_entry("daily", DAILY, next_run_at=T0)

    fetched = stored_entry(store, "daily")

    assert fetched == created
    assert fetched.name == "daily"
    assert fetched.owner == "api"
    assert fetched.definition == DAILY
    assert fetched.paused is False
    assert fetched.active is True
    assert fetched.next_run_at == T0
    assert fetched.next_run_at.tzinfo is UTC
    assert fetched.last_slot is None
    assert fetched.run_count == 0
    assert fetched.version == 1
    assert fetched.change_seq == store.change_seq()
    assert fetched.created_at.tzinfo is UTC
    assert fetched.updated_at == fetched.created_at


def test_datetimes_in_other_zones_are_stored_as_the_same_instant(store: Store) -> None:
    berlin_nine = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))

    record = store.create_entry("zoned", EVERY_MINUTE, next_run_at=berlin_nine)

    assert record.next_run_at == T0
    assert record.next_run_at.tzinfo is UTC


def test_a_naive_datetime_is_refused_as_a_programming_error(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        store.create_entry("naive", EVERY_MINUTE, next_run_at=datetime(2026, 3, 1, 8, 0))
    assert store.get_entry("naive") is None


def test_get_of_an_unknown_name_is_none(store: Store) -> None:
    assert store.get_entry("nope") is None


def test_creating_a_taken_name_raises_entry_exists_naming_it(store: Store) -> None:
    store.create_entry("ping", EVERY_MINUTE, owner="config", next_run_at=T0)

    with pytest.raises(EntryExists, match=r"'ping' already exists .*settings\.toml"):
        store.create_entry("ping", DAILY, next_run_at=None)
    assert stored_entry(store, "ping").definition == EVERY_MINUTE


def test_replace_redefines_an_api_entry_and_keeps_pause_and_progress(store: Store) -> None:
    store.create_entry("ping", EVERY_MINUTE, next_run_at=T0)
    store.set_paused("ping", True)
    store.set_next_run("ping", T0 + timedelta(minutes=1))
    before = stored_entry(store, "ping")

    replaced = store.replace_entry("ping", DAILY, next_run_at=T0 + timedelta(days=1))

    assert replaced.definition == DAILY
    assert replaced.next_run_at == T0 + timedelta(days=1)
    assert replaced.paused is True
    assert replaced.version == before.version + 1
    assert replaced.change_seq > before.change_seq
    assert replaced.created_at == before.created_at
    assert replaced.updated_at >= before.updated_at
    assert store.get_entry("ping") == replaced


def test_replace_of_a_config_entry_points_at_settings_toml(store: Store) -> None:
    store.create_entry("report", DAILY, owner="config", next_run_at=T0)

    with pytest.raises(ConfigOwnedEntry) as raised:
        store.replace_entry("report", EVERY_MINUTE, next_run_at=None)

    assert str(raised.value) == "entry 'report' is declared in settings.toml; change it there"
    assert stored_entry(store, "report").definition == DAILY


def test_replace_of_an_unknown_entry_raises_entry_not_found(store: Store) -> None:
    with pytest.raises(EntryNotFound, match="'ghost'"):
        store.replace_entry("ghost", DAILY, next_run_at=None)


def test_delete_removes_an_api_entry_but_keeps_its_run_history(store: Store) -> None:
    store.create_entry("ping", EVERY_MINUTE, next_run_at=T0)
    lease = store.acquire_lease("beat-a", timedelta(seconds=10), datetime.now(UTC))
    assert lease is not None
    store.claim_slots(
        [SlotClaim("ping", T0, "task-1", RunState.PENDING)],
        holder="beat-a",
        token=lease.token,
        next_runs={},
    )

    store.delete_entry("ping")

    assert store.get_entry("ping") is None
    assert store.get_run("task-1") is not None
    with pytest.raises(EntryNotFound, match="'ping'"):
        store.delete_entry("ping")


def test_delete_of_a_config_entry_is_refused(store: Store) -> None:
    store.create_entry("report", DAILY, owner="config", next_run_at=T0)

    with pytest.raises(ConfigOwnedEntry, match=r"'report' is declared in settings\.toml"):
        store.delete_entry("report")
    assert store.get_entry("report") is not None


def test_pause_and_resume_work_for_any_owner(store: Store) -> None:
    store.create_entry("report", DAILY, owner="config", next_run_at=T0)
    seq = store.change_seq()

    paused = store.set_paused("report", True)

    assert paused.paused is True
    assert paused.active is False
    assert paused.change_seq > seq
    resumed = store.set_paused("report", False)
    assert resumed.active is True
    assert resumed.version == paused.version + 1


def test_pausing_a_paused_entry_changes_nothing(store: Store) -> None:
    store.create_entry("ping", EVERY_MINUTE, next_run_at=T0)
    first = store.set_paused("ping", True)

    again = store.set_paused("ping", True)

    assert again == first
    assert store.change_seq() == first.change_seq


def test_pause_of_an_unknown_entry_raises_entry_not_found(store: Store) -> None:
    with pytest.raises(EntryNotFound, match="'ghost'"):
        store.set_paused("ghost", True)


def test_set_next_run_records_progress_without_a_change_notice(store: Store) -> None:
    created = store.create_entry("ping", EVERY_MINUTE, next_run_at=T0)
    seq = store.change_seq()

    store.set_next_run("ping", None)

    record = stored_entry(store, "ping")
    assert record.next_run_at is None
    assert record.version == created.version + 1
    assert store.change_seq() == seq
    with pytest.raises(EntryNotFound):
        store.set_next_run("ghost", T0)


def test_list_entries_pages_by_name_with_a_cursor(store: Store) -> None:
    for name in ["c", "a", "e", "b", "d"]:
        store.create_entry(name, EVERY_MINUTE, next_run_at=T0)

    first = store.list_entries(limit=2)
    second = store.list_entries(after=first[-1].name, limit=2)
    third = store.list_entries(after=second[-1].name, limit=2)

    assert [e.name for e in first] == ["a", "b"]
    assert [e.name for e in second] == ["c", "d"]
    assert [e.name for e in third] == ["e"]
    assert store.count_entries() == 5


def test_list_entries_filters_by_owner_and_activity(store: Store) -> None:
    store.create_entry("api-on", EVERY_MINUTE, next_run_at=T0)
    store.create_entry("api-paused", EVERY_MINUTE, next_run_at=T0)
    store.set_paused("api-paused", True)
    disabled = EVERY_MINUTE.model_copy(update={"enabled": False})
    store.create_entry("config-disabled", disabled, owner="config", next_run_at=None)
    store.create_entry("config-on", DAILY, owner="config", next_run_at=T0)

    def names(**filters: object) -> list[str]:
        return [entry.name for entry in store.list_entries(**filters)]  # type: ignore[arg-type]

    assert names(active=True) == ["api-on", "config-on"]
    assert names(active=False) == ["api-paused", "config-disabled"]
    assert names(owner="config") == ["config-disabled", "config-on"]
    assert names(owner="api", active=False) == ["api-paused"]


def test_list_entries_filters_by_queue_in_sql(store: Store) -> None:
    report = "acme.reports.send"
    store.create_entry(
        "own-high", EVERY_MINUTE.model_copy(update={"queue": "high"}), next_run_at=T0
    )
    store.create_entry("routed", ScheduleEntry(task=report, every="1m"), next_run_at=T0)
    store.create_entry("defaulted", EVERY_MINUTE, next_run_at=T0)
    store.create_entry(
        "own-low", ScheduleEntry(task=report, every="1m", queue="low"), next_run_at=T0
    )

    assert store.unqueued_tasks() == {report, EVERY_MINUTE.task}

    def names(queue: str, *routed: str) -> list[str]:
        match = QueueMatch(queue, frozenset(routed))
        return [entry.name for entry in store.list_entries(queue=match)]

    assert names("high", report) == ["own-high", "routed"]
    assert names("high") == ["own-high"]
    assert names("low") == ["own-low"]
    assert names("default", EVERY_MINUTE.task) == ["defaulted"]
    assert names("nowhere", "no.such.task") == []


def test_all_entries_streams_every_row_in_name_order_across_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_rows, "STREAM_BATCH", 3)
    monkeypatch.setattr("scheduling.store.entries.STREAM_BATCH", 3)
    names = [f"entry-{index:02d}" for index in range(10)]
    store.bulk_create_entries([(name, EVERY_MINUTE, T0) for name in reversed(names)])

    assert [entry.name for entry in store.all_entries()] == names


def test_a_row_whose_definition_no_longer_validates_is_skipped_and_logged(
    store: Store, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store.create_entry("good", EVERY_MINUTE, next_run_at=T0)
    store.create_entry("broken", EVERY_MINUTE, next_run_at=T0)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE periodic_entries SET definition = :bad WHERE name = 'broken'"),
            {"bad": '{"task": "x", "every": "soon"}'},
        )
    engine.dispose()

    with caplog.at_level(logging.ERROR, logger="scheduling.store"):
        listed = [entry.name for entry in store.all_entries()]

    assert listed == ["good"]
    assert "skipping entry 'broken'" in caplog.text
    with pytest.raises(StoreError, match="'broken' has a stored definition"):
        store.get_entry("broken")


def test_open_is_idempotent_and_records_the_schema_version(store_url: str) -> None:
    with Store.open(store_url) as first:
        first.create_entry("ping", EVERY_MINUTE, next_run_at=T0)
    with Store.open(store_url) as second:
        assert second.get_entry("ping") is not None

    engine = create_engine(store_url)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version FROM periodic_schema")).scalars().all()
    engine.dispose()
    assert versions == list(range(1, SCHEMA_VERSION + 1))


OPEN_ON_SIGNAL = """
import sys
from scheduling.store import Store
print("ready", flush=True)
sys.stdin.readline()
with Store.open(sys.argv[1]) as store:
    print(store.count_entries(), flush=True)
"""


def test_several_processes_may_open_a_fresh_database_at_once(store_url: str) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_ON_SIGNAL, store_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    # Imports take a while; release all three at once so the migrations really race.
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    results = [process.communicate("go\n", timeout=60) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], results
    assert [out.strip() for out, _ in results] == ["0", "0", "0"]


def test_a_newer_schema_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO periodic_schema (version, applied_at) VALUES (:v, :at)"),
            {"v": SCHEMA_VERSION + 1, "at": datetime(2030, 1, 1)},
        )
    engine.dispose()

    with pytest.raises(StoreError, match=f"version {SCHEMA_VERSION + 1}, newer"):
        Store.open(store_url)


def test_an_unreachable_database_raises_store_error_chained_to_the_cause() -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1") as raised:
        Store.open("postgresql://periodic:secret@127.0.0.1:1/periodic")

    assert raised.value.__cause__ is not None
    assert "secret" not in str(raised.value)
