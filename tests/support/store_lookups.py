"""Store test helpers: lookups that must find something, and a stopwatch."""

from __future__ import annotations

import time

from scheduling.store import EntryRecord, LeaseRecord, RunRecord, Store

__all__ = ["Stopwatch", "stored_entry", "stored_lease", "stored_run"]


def stored_entry(store: Store, name: str) -> EntryRecord:
    record = store.get_entry(name)
    assert record is not None, f"entry {name!r} is not in the store"
    return record


def stored_run(store: Store, task_id: str) -> RunRecord:
    record = store.get_run(task_id)
    assert record is not None, f"run {task_id!r} is not in the ledger"
    return record


def stored_lease(store: Store) -> LeaseRecord:
    record = store.current_lease()
    assert record is not None, "nobody holds the lease"
    return record


class Stopwatch:
    """Wall time of a ``with`` block, in ``seconds``."""

    seconds: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._started
