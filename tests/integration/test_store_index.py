"""Beat's due index on SQLite and PostgreSQL: timing columns without definitions, records on demand.

`jitter_us` is derived from the definition on every write path and back-filled by the v2
migration; `entry_index()` must agree with the full records, whatever path wrote them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from scheduling.config.settings import ScheduleEntry
from scheduling.store import SCHEMA_VERSION, EntryIndexRow, EntryRecord, Store
from scheduling.store import index as store_index

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"
PLAIN = ScheduleEntry(task=HEARTBEAT, every="1h")
JITTERED = ScheduleEntry(task=HEARTBEAT, every="1h", jitter="90s")
DISABLED = ScheduleEntry(task=HEARTBEAT, every="1h", enabled=False, jitter="250ms")


def index_of(store: Store) -> dict[str, EntryIndexRow]:
    return {row.name: row for row in store.entry_index()}


def expected(record: EntryRecord) -> EntryIndexRow:
    return EntryIndexRow.of(record)


def test_every_write_path_keeps_the_index_equal_to_the_records(store: Store) -> None:
    store.create_entry("created", JITTERED, next_run_at=T0)
    store.create_entry("replaced", PLAIN, next_run_at=T0)
    store.replace_entry("replaced", DISABLED, next_run_at=None)
    store.create_entry("paused", JITTERED, next_run_at=T0)
    store.set_paused("paused", True)
    store.bulk_create_entries([("bulk-a", JITTERED, T0), ("bulk-b", PLAIN, T0 + timedelta(1))])
    store.sync_config({"config-a": JITTERED, "config-b": PLAIN}, {"config-a": T0})
    store.sync_config({"config-a": PLAIN, "config-b": JITTERED}, {"config-b": T0})

    index = index_of(store)
    records = {record.name: record for record in store.all_entries()}

    assert index == {name: expected(record) for name, record in records.items()}
    assert index["created"].jitter == timedelta(seconds=90)
    assert index["created"].active is True
    assert index["replaced"] == EntryIndexRow(
        "replaced", None, False, timedelta(milliseconds=250), 2
    )
    assert index["paused"].active is False
    assert index["config-a"].jitter == timedelta(0)
    assert index["config-b"].jitter == timedelta(seconds=90)
    assert index["config-b"].next_run_at == T0
    assert all(row.next_run_at is None or row.next_run_at.tzinfo is UTC for row in index.values())


def test_the_index_streams_across_batches_in_name_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_index, "INDEX_BATCH", 7)
    names = [f"e-{i:03d}" for i in range(30)]
    store.bulk_create_entries([(name, PLAIN, T0) for name in reversed(names)])

    assert [row.name for row in store.entry_index()] == names
    store.delete_entry("e-010")
    assert len(list(store.entry_index())) == 29


def test_get_entries_returns_full_records_in_the_order_asked(store: Store) -> None:
    store.bulk_create_entries([(f"e-{i:04d}", JITTERED, T0) for i in range(2500)])

    wanted = ["e-2499", "missing", "e-0000", "e-1234", "e-0000"]
    fetched = store.get_entries(wanted)

    assert [record.name for record in fetched] == ["e-2499", "e-0000", "e-1234"]
    assert fetched[0] == store.get_entry("e-2499")
    assert fetched[0].definition == JITTERED
    many = store.get_entries(f"e-{i:04d}" for i in range(2500))  # more than one IN chunk
    assert len(many) == 2500
    assert store.get_entries([]) == []


def test_migration_from_v1_adds_and_backfills_jitter(store_url: str) -> None:
    """A store written by the previous release (no jitter_us column) gains it, filled in."""
    with Store.open(store_url) as store:
        store.create_entry("jittered", JITTERED, next_run_at=T0)
        store.create_entry("plain", PLAIN, next_run_at=T0)
        store.create_entry("disabled", DISABLED, next_run_at=None)
    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE periodic_entries DROP COLUMN jitter_us"))
        conn.execute(text("DELETE FROM periodic_schema WHERE version >= 2"))

    with Store.open(store_url) as store:
        index = index_of(store)
        records = {record.name: record for record in store.all_entries()}

    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version FROM periodic_schema ORDER BY 1")).scalars()
        assert list(versions) == list(range(1, SCHEMA_VERSION + 1))
    engine.dispose()
    assert index["jittered"].jitter == timedelta(seconds=90)
    assert index["plain"].jitter == timedelta(0)
    assert index["disabled"] == EntryIndexRow(
        "disabled", None, False, timedelta(milliseconds=250), 1
    )
    assert index == {name: expected(record) for name, record in records.items()}
