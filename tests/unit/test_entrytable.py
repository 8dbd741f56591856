"""Beat's in-memory schedule: loaded once, kept current from changed rows only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduling.beat import entrytable
from scheduling.beat.entrytable import EntryTable
from scheduling.config.settings import Settings
from scheduling.errors import StoreError
from scheduling.store import EntryIndexRow, EntryRecord
from scheduling.timing.slots import jitter_offset
from tests.support.records import EVERY_MINUTE, entry_record

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(name: str, next_run_at: datetime | None, **changes: Any) -> EntryRecord:
    return entry_record(name, next_run_at=next_run_at, **changes)


def test_load_schedules_only_active_entries_with_a_next_run() -> None:
    table = EntryTable(Settings())
    table.load(
        [
            record("a", T0),
            record("paused", T0, paused=True),
            record("exhausted", None),
            record("b", T0 + timedelta(minutes=1)),
        ]
    )
    assert len(table) == 4
    assert [r.name for r in table.pop_due(T0, 100)] == ["a"]
    assert table.next_due() == T0 + timedelta(minutes=1)


def test_changed_rows_move_entries_and_resumes_are_reported() -> None:
    table = EntryTable(Settings())
    table.load([record("a", T0), record("b", T0, paused=True)])
    resumed = table.apply([record("b", T0, paused=False), record("a", T0 + timedelta(hours=1))], [])
    assert [r.name for r in resumed] == ["b"]
    assert [r.name for r in table.pop_due(T0, 100)] == ["b"]
    table.apply([], ["a"])
    assert table.next_due() is None
    assert "a" not in table.records


def test_advance_and_retry_later() -> None:
    table = EntryTable(Settings())
    table.load([record("a", T0)])
    (due,) = table.pop_due(T0, 100)
    table.retry_later([due.name])
    assert table.next_due() == T0
    table.pop_due(T0, 100)
    table.advance("a", T0 + timedelta(minutes=1), dispatched=1)
    assert table.records["a"].run_count == 1
    assert table.next_due() == T0 + timedelta(minutes=1)


def test_jitter_delays_the_heap_time() -> None:
    jittered = EVERY_MINUTE.model_copy(update={"jitter": timedelta(seconds=30)})
    table = EntryTable(Settings())
    table.load([record("j", T0, definition=jittered)])
    assert table.next_due() == T0 + jitter_offset("j", T0, timedelta(seconds=30))


def test_an_entry_that_cannot_resolve_is_reported_not_raised() -> None:
    table = EntryTable(Settings())
    orphan = EVERY_MINUTE.model_copy(update={"queue": "gone"})
    rec = record("orphan", T0, definition=orphan)
    table.load([rec])
    assert table.shape(rec) is None
    assert table.shape(record("a", T0)) is not None


def index_row(name: str, next_run_at: datetime | None, active: bool = True) -> EntryIndexRow:
    return EntryIndexRow(name, next_run_at, active, timedelta(0), 1)


class FakeStore:
    """Full records by name, counting fetches, as `Store.get_entries` hands them out."""

    def __init__(self, *records: EntryRecord) -> None:
        self.rows = {r.name: r for r in records}
        self.fetches: list[list[str]] = []
        self.failing = False

    def get_entries(self, names: list[str]) -> list[EntryRecord]:
        if self.failing:
            raise StoreError("store down")
        self.fetches.append(list(names))
        return [self.rows[name] for name in names if name in self.rows]


def test_index_rows_load_without_records_and_due_ones_are_fetched_in_one_batch() -> None:
    store = FakeStore(record("a", T0), record("b", T0), record("later", T0 + timedelta(hours=1)))
    table = EntryTable(Settings(), store.get_entries)
    table.load(
        [
            index_row("a", T0),
            index_row("b", T0),
            index_row("paused", T0, active=False),
            index_row("later", T0 + timedelta(hours=1)),
        ]
    )
    assert len(table) == 4
    assert table.records == {}

    assert [r.name for r in table.pop_due(T0, 100)] == ["a", "b"]
    assert store.fetches == [["a", "b"]]
    table.advance("a", T0 + timedelta(minutes=1), dispatched=1)
    assert table.records["a"].run_count == 1
    assert table.pop_due(T0 + timedelta(minutes=1), 100)[0].next_run_at == T0 + timedelta(minutes=1)
    assert store.fetches == [["a", "b"]]  # cached since


def test_a_failed_fetch_puts_the_due_entries_back() -> None:
    store = FakeStore(record("a", T0))
    table = EntryTable(Settings(), store.get_entries)
    table.load([index_row("a", T0)])
    store.failing = True
    with pytest.raises(StoreError):
        table.pop_due(T0, 100)
    assert table.next_due() == T0
    store.failing = False
    assert [r.name for r in table.pop_due(T0, 100)] == ["a"]


def test_an_entry_the_store_does_not_return_is_in_error_until_the_feed_deletes_it() -> None:
    table = EntryTable(Settings(), FakeStore().get_entries)
    table.load([index_row("gone", T0)])
    assert table.pop_due(T0, 100) == []
    fault = table.faults.active["gone"]
    assert "definition does not validate" in fault.message
    assert table.next_due() == fault.retry_at
    table.apply([], ["gone"])
    assert table.next_due() is None
    assert "gone" not in table.faults


def test_an_entry_whose_due_time_overflows_is_in_error_and_the_others_load() -> None:
    table = EntryTable(Settings())
    poison = EntryIndexRow("poison", T0, True, timedelta(days=999_999_000), 1)
    table.load([poison, index_row("ok", T0)])
    assert "OverflowError" in table.faults.active["poison"].message
    assert table.heap.due_at("ok") == T0
    assert table.heap.due_at("poison") == table.faults.active["poison"].retry_at
    table.apply([record("poison", T0), record("other", T0)], [])
    assert "poison" not in table.faults
    assert table.heap.due_at("other") == T0


def test_the_record_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entrytable, "RECORD_CACHE", 3)
    names = [f"e{i}" for i in range(5)]
    store = FakeStore(*(record(name, T0) for name in names))
    table = EntryTable(Settings(), store.get_entries)
    table.load([index_row(name, T0) for name in names])
    assert len(table.pop_due(T0, 100)) == 5
    assert list(table.records) == ["e2", "e3", "e4"]
    assert len(table) == 5
