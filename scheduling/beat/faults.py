"""Entries in error: one entry's fault is that entry's problem, visible and retried with backoff.

Every per-entry step of a tick (due time, slot plan, catch-up, jitter, expiry, the message the
broker refuses) runs so that an exception stops only that entry. The entry is recorded here with
the error, put back on the heap at its retry time (5 s doubling to 5 min), and written to the
store's ``periodic_entry_faults`` table, where the API (``status.error``), the dashboard,
``/metrics`` and ``/readyz`` read it. Every other entry keeps its schedule. The first failure
of an entry is logged with its traceback, repeats only at debug level, recovery once.

An entry leaves the error state when a later attempt succeeds, or when it is changed or deleted
(the change feed says so; a redefined entry gets a fresh start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from scheduling.store import EntryFault

__all__ = ["FIRST_RETRY", "MAX_RETRY", "EntryFaults", "FaultStore"]

logger = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(minutes=5)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FaultStore(Protocol):
    """What `EntryFaults.flush` needs of the store (`Store` provides it)."""

    def record_entry_faults(self, faults: Sequence[EntryFault]) -> None: ...

    def clear_entry_faults(self, names: Iterable[str]) -> None: ...


class EntryFaults:
    """The entries this beat found in error, and what the store has not been told yet."""

    def __init__(self, clock: Clock = _utc_now) -> None:
        self.clock = clock
        self.active: dict[str, EntryFault] = {}
        self._unwritten: set[str] = set()
        self._uncleared: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self.active

    def failed(self, name: str, error: BaseException | str) -> datetime:
        """Record a failure of `name`; return when to try the entry again."""
        now = self.clock()
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        previous = self.active.get(name)
        failures = previous.failures + 1 if previous else 1
        delay = min(MAX_RETRY, FIRST_RETRY * (1 << min(failures - 1, 16)))
        retry_at = now + delay
        if previous is None:
            exc_info = error if isinstance(error, BaseException) else None
            logger.error(
                "entry %r is in error, other entries are not affected; retrying in %ds: %s",
                name,
                delay.total_seconds(),
                message,
                exc_info=exc_info,
            )
        else:
            logger.debug("entry %r still in error (%d failures): %s", name, failures, message)
        self.active[name] = EntryFault(
            name, message, failures, previous.since if previous else now, retry_at
        )
        self._unwritten.add(name)
        self._uncleared.discard(name)
        return retry_at

    def succeeded(self, name: str) -> None:
        """`name` was scheduled without error: it leaves the error state (if it was in it)."""
        if self.active.pop(name, None) is not None:
            logger.warning("entry %r recovered", name)
            self._unwritten.discard(name)
            self._uncleared.add(name)

    def forget(self, name: str) -> None:
        """The entry changed or was deleted: whatever failed before gets a fresh start."""
        if self.active.pop(name, None) is not None:
            self._unwritten.discard(name)
            self._uncleared.add(name)

    def adopt(self, stored: dict[str, EntryFault]) -> None:
        """A new leader takes over the faults the store holds (backoff and since carry on)."""
        self.active = dict(stored)
        self._unwritten.clear()
        self._uncleared.clear()

    @property
    def dirty(self) -> bool:
        return bool(self._unwritten or self._uncleared)

    def flush(self, store: FaultStore) -> None:
        """Write what changed; raises StoreError and keeps it for the next flush."""
        if self._unwritten:
            store.record_entry_faults([self.active[name] for name in sorted(self._unwritten)])
            self._unwritten.clear()
        if self._uncleared:
            store.clear_entry_faults(sorted(self._uncleared))
            self._uncleared.clear()
