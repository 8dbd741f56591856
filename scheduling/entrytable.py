"""Beat's in-memory copy of the schedule: every entry's record, and a heap of when each is due.

Loaded once from the store (streamed, at start-up or on take-over) and then kept current from
the change feed, which carries only the rows that changed; beat never reloads the whole table
for a change. Definitions are resolved against the settings (`EntryShape`) lazily, when an entry
falls due, and shared between entries with the same stored definition, so start-up at 100k
entries does not compile 100k timetables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from scheduling.dueheap import DueHeap
from scheduling.settings import ScheduleEntry, Settings
from scheduling.slotplan import EntryShape, entry_shape, send_time
from scheduling.store import EntryRecord

__all__ = ["EntryTable"]

logger = logging.getLogger(__name__)


class EntryTable:
    """Entries by name plus the `DueHeap` of the active ones (keyed on next send time)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records: dict[str, EntryRecord] = {}
        self.heap = DueHeap()
        self._shapes: dict[int, tuple[ScheduleEntry, EntryShape]] = {}
        self._broken: set[str] = set()

    def __len__(self) -> int:
        return len(self.records)

    def use_settings(self, settings: Settings) -> None:
        """New settings (routes, queues, zone) change how every definition resolves."""
        self.settings = settings
        self._shapes.clear()
        self._broken.clear()

    def load(self, records: Iterable[EntryRecord]) -> None:
        """Replace everything with `records` (a full read of the store)."""
        self.records = {record.name: record for record in records}
        due_time = self._due_time
        due = [(name, when) for name, r in self.records.items() if (when := due_time(r))]
        self.heap.load(due)

    def apply(self, changed: Iterable[EntryRecord], deleted: Iterable[str]) -> list[EntryRecord]:
        """Apply rows from the change feed; return those that were resumed (inactive -> active)."""
        resumed: list[EntryRecord] = []
        for name in deleted:
            self.records.pop(name, None)
            self.heap.remove(name)
        for record in changed:
            before = self.records.get(record.name)
            self.records[record.name] = record
            self._broken.discard(record.name)
            if before is not None and not before.active and record.active:
                resumed.append(record)
            self.heap.put(record.name, self._due_time(record))
        return resumed

    def advance(self, name: str, next_run: datetime | None, dispatched: int) -> None:
        """Progress after a claim: the entry's next slot, and runs added toward max_runs."""
        record = self.records.get(name)
        if record is None:
            return
        record = replace(record, next_run_at=next_run, run_count=record.run_count + dispatched)
        self.records[name] = record
        self.heap.put(name, self._due_time(record))

    def retry_later(self, names: Iterable[str]) -> None:
        """Put popped entries back unchanged (their claim did not happen)."""
        for name in names:
            record = self.records.get(name)
            if record is not None:
                self.heap.put(name, self._due_time(record))

    def pop_due(self, now: datetime, limit: int) -> list[EntryRecord]:
        return [self.records[name] for name in self.heap.pop_due(now, limit)]

    def next_due(self) -> datetime | None:
        return self.heap.next_due()

    def shape(self, record: EntryRecord) -> EntryShape | None:
        """The resolved definition, or None (logged once) when it cannot run any more."""
        definition = record.definition
        cached = self._shapes.get(id(definition))
        if cached is not None and cached[0] is definition:
            return cached[1]
        try:
            shape = entry_shape(definition, self.settings)
        except (KeyError, ValueError) as error:
            if record.name not in self._broken:
                self._broken.add(record.name)
                logger.error("entry %r cannot be scheduled: %s", record.name, error)
            return None
        if len(self._shapes) > 2 * len(self.records) + 1024:
            self._shapes.clear()
        self._shapes[id(definition)] = (definition, shape)
        return shape

    @staticmethod
    def _due_time(record: EntryRecord) -> datetime | None:
        definition = record.definition
        if record.next_run_at is None or record.paused or not definition.enabled:
            return None
        if not definition.jitter:
            return record.next_run_at
        return send_time(record.name, record.next_run_at, definition.jitter)
