"""The in-memory index of when each entry next needs beat: a heap with lazy invalidation.

An idle tick must cost the same at 100 and at 100,000 entries, so beat never scans its entries:
it looks at the top of this heap. Changing an entry's time does not search the heap for the old
item; it records a new generation for the name and pushes a new item, and items whose
generation is no longer current are dropped when they surface. The heap is rebuilt when stale
items outnumber live ones, so memory stays proportional to the number of entries.
"""

from __future__ import annotations

import heapq
from datetime import datetime

__all__ = ["DueHeap"]

_COMPACT_MIN = 1024


class DueHeap:
    """Entry names ordered by the instant they fall due (aware UTC datetimes)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []
        self._current: dict[str, tuple[int, datetime]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, name: object) -> bool:
        return name in self._current

    def due_at(self, name: str) -> datetime | None:
        current = self._current.get(name)
        return current[1] if current else None

    def put(self, name: str, due: datetime | None) -> None:
        """Schedule `name` at `due`, replacing any earlier time; None removes it."""
        if due is None:
            self.remove(name)
            return
        self._generation += 1
        self._current[name] = (self._generation, due)
        heapq.heappush(self._heap, (due, self._generation, name))
        self._maybe_compact()

    def load(self, items: list[tuple[str, datetime]]) -> None:
        """Replace the whole content in O(n) (start-up and take-over)."""
        first = self._generation + 1
        self._generation += len(items)
        self._heap = [(due, first + index, name) for index, (name, due) in enumerate(items)]
        self._current = {name: (generation, due) for due, generation, name in self._heap}
        heapq.heapify(self._heap)

    def remove(self, name: str) -> None:
        self._current.pop(name, None)

    def next_due(self) -> datetime | None:
        """The earliest live instant, or None when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime, limit: int | None = None) -> list[str]:
        """Remove and return the names due at or before `now`, earliest first."""
        names: list[str] = []
        while self._heap and (limit is None or len(names) < limit):
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            _, _, name = heapq.heappop(self._heap)
            del self._current[name]
            names.append(name)
        return names

    def _live(self, item: tuple[datetime, int, str]) -> bool:
        current = self._current.get(item[2])
        return current is not None and current[0] == item[1]

    def _drop_stale(self) -> None:
        while self._heap and not self._live(self._heap[0]):
            heapq.heappop(self._heap)

    def _maybe_compact(self) -> None:
        if len(self._heap) > max(_COMPACT_MIN, 2 * len(self._current)):
            self._heap = [(due, gen, name) for name, (gen, due) in self._current.items()]
            heapq.heapify(self._heap)
