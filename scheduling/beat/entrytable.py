"""Beat's in-memory copy of the schedule: when each entry is due, and a heap of those times.

Loaded once from the store's due index (streamed, at start-up or on take-over) and then kept
current from the change feed, which carries only the rows that changed; beat never reloads the
whole table for a change. Per entry the table keeps only what decides when it is due
(`EntryIndexRow`: a tuple, no definition), so start-up and memory at 100k entries do not
depend on how many distinct definitions there are. Full records (with the definition) are
needed only when an entry falls due: `pop_due` fetches the missing ones in one batch and keeps
a bounded cache of them. Definitions are resolved against the settings (`EntryShape`) lazily
and shared between entries with the same stored definition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from scheduling.beat.dueheap import DueHeap
from scheduling.beat.faults import EntryFaults
from scheduling.beat.slotplan import EntryShape, entry_shape, send_time
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.store import EntryIndexRow, EntryRecord

__all__ = ["RECORD_CACHE", "EntryTable", "Fetch"]

logger = logging.getLogger(__name__)

RECORD_CACHE = 20_000
"""Full records kept (most recently used); the rest are fetched again when they fall due."""

Fetch = Callable[[list[str]], list[EntryRecord]]
"""Full records for names (`Store.get_entries`): unknown or invalid ones are left out."""


class EntryTable:
    """Index rows of every entry, the `DueHeap` of the active ones, and a cache of records."""

    def __init__(self, settings: Settings, fetch: Fetch | None = None) -> None:
        self.settings = settings
        self.fetch = fetch
        self.index: dict[str, EntryIndexRow] = {}
        self.records: dict[str, EntryRecord] = {}
        """Full records of entries whose definition was needed, oldest use first (bounded)."""
        self.heap = DueHeap()
        self.faults = EntryFaults()
        """Entries in error (see `scheduling.beat.faults`); the scheduler writes them out."""
        self._shapes: dict[int, tuple[ScheduleEntry, EntryShape]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def use_settings(self, settings: Settings) -> None:
        """New settings (routes, queues, zone) change how every definition resolves."""
        self.settings = settings
        self._shapes.clear()

    def load(self, rows: Iterable[EntryIndexRow | EntryRecord]) -> None:
        """Replace everything with `rows` (a full read of the store's index, or records)."""
        self.index = {}
        self.records = {}
        index = self.index
        for row in rows:
            if isinstance(row, EntryRecord):
                self._remember(row)
                row = EntryIndexRow.of(row)
            index[row.name] = row
        due: list[tuple[str, datetime]] = []
        for name, row in index.items():
            try:
                when = self._due_time(row)
            except Exception as error:  # one entry's arithmetic never stops the load
                when = self.faults.failed(name, error)
            if when is not None:
                due.append((name, when))
        self.heap.load(due)

    def apply(self, changed: Iterable[EntryRecord], deleted: Iterable[str]) -> list[EntryRecord]:
        """Apply rows from the change feed; return those that were resumed (inactive -> active)."""
        resumed: list[EntryRecord] = []
        for name in deleted:
            self.index.pop(name, None)
            self.records.pop(name, None)
            self.heap.remove(name)
            self.faults.forget(name)
        for record in changed:
            before = self.index.get(record.name)
            row = EntryIndexRow.of(record)
            self.index[record.name] = row
            self._remember(record)
            self.faults.forget(record.name)
            if before is not None and not before.active and row.active:
                resumed.append(record)
            self._place(record.name, row)
        return resumed

    def advance(self, name: str, next_run: datetime | None, dispatched: int) -> None:
        """Progress after a claim: the entry's next slot, and runs added toward max_runs."""
        row = self.index.get(name)
        if row is None:
            return
        row = self.index[name] = row._replace(next_run_at=next_run)
        record = self.records.get(name)
        if record is not None:
            self.records[name] = replace(
                record, next_run_at=next_run, run_count=record.run_count + dispatched
            )
        self._place(name, row)

    def retry_later(self, names: Iterable[str]) -> None:
        """Put popped entries back unchanged (their claim did not happen)."""
        for name in names:
            row = self.index.get(name)
            if row is not None:
                self._place(name, row)

    def fail(self, name: str, error: BaseException | str) -> None:
        """`name` failed a step of its own: in error, back on the heap at its retry time."""
        retry_at = self.faults.failed(name, error)
        if name in self.index:
            self.heap.put(name, retry_at)

    def due_time_after(self, name: str, next_run: datetime | None) -> datetime | None:
        """When `name` would be due with `next_run`; raises what placing it would raise."""
        row = self.index.get(name)
        return None if row is None else self._due_time(row._replace(next_run_at=next_run))

    def _place(self, name: str, row: EntryIndexRow) -> None:
        """Put `name` on the heap at its due time; an entry whose time cannot be computed is
        put in error instead of stopping the caller's loop."""
        try:
            due = self._due_time(row)
        except Exception as error:
            self.fail(name, error)
            return
        self.heap.put(name, due)

    def pop_due(self, now: datetime, limit: int) -> list[EntryRecord]:
        """The due entries' full records; those not cached are fetched in one batch.

        If the fetch fails the entries go back on the heap before the error propagates. An
        entry the store no longer returns (deleted meanwhile, or an invalid definition, which
        the store logs) is dropped until the change feed brings it back.
        """
        names = self.heap.pop_due(now, limit)
        if not names:
            return []
        known = {name: record for name in names if (record := self.records.get(name))}
        missing = [name for name in names if name not in known]
        if missing:
            if self.fetch is None:
                raise LookupError(f"no records for {missing[:3]} and no store to fetch them")
            try:
                fetched = self.fetch(missing)
            except BaseException:
                self.retry_later(names)
                raise
            known.update((record.name, record) for record in fetched)
        found = [record for name in names if (record := known.get(name)) is not None]
        for record in found:
            self._remember(record)  # most recently used goes last
        for name in names:
            if name not in known and name in self.index:
                # Not returned: deleted meanwhile (the change feed drops it within a sync
                # interval) or its stored definition does not parse (it stays in error).
                self.fail(name, "its stored definition does not validate (see the beat log)")
        return found

    def next_due(self) -> datetime | None:
        return self.heap.next_due()

    def shape(self, record: EntryRecord) -> EntryShape | None:
        """The resolved definition, or None when it cannot run (the entry is put in error)."""
        definition = record.definition
        cached = self._shapes.get(id(definition))
        if cached is not None and cached[0] is definition:
            return cached[1]
        try:
            shape = entry_shape(definition, self.settings)
        except Exception as error:
            self.fail(record.name, error)
            return None
        if len(self._shapes) > 2 * len(self.records) + 1024:
            self._shapes.clear()
        self._shapes[id(definition)] = (definition, shape)
        return shape

    def _remember(self, record: EntryRecord) -> None:
        records = self.records
        records.pop(record.name, None)
        records[record.name] = record
        if len(records) > RECORD_CACHE:
            del records[next(iter(records))]

    @staticmethod
    def _due_time(row: EntryIndexRow) -> datetime | None:
        if row.next_run_at is None or not row.active:
            return None
        if not row.jitter:
            return row.next_run_at
        return send_time(row.name, row.next_run_at, row.jitter)
