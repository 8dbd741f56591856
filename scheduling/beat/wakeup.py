"""Beat's sleep: until the next due time, a change signal from the store, or a nudge.

Celery's beat loop sleeps for whatever `tick()` returns and cannot be woken, so a beat that
only polls must choose between latency and idle cost. `Wakeup.wait` sleeps in `poll` on the
store's change signal (a PostgreSQL LISTEN socket; on SQLite an inotify descriptor, or a cheap
look at `data_version` every `look_interval`) and on a pipe other threads can `nudge` (the lease
thread, when this beat becomes leader). The scheduler then returns 0 to Celery and runs its next
tick at once.

The poll fallback runs inside the sleep too: given the change sequence the caller has applied,
`wait` reads the sequence on the signal's own connection every `fallback_interval` and wakes only
if it moved. A notification that was lost (or a writer that sent none) therefore costs at most
that interval, and an idle leader pays one primary-key read per interval instead of a whole
tick of Celery's loop (measured: about a third of the CPU).

The signal is opened lazily and reopened after a fault, at most every `retry_interval`; while it
is down `listening` is False and the scheduler polls the change sequence itself, as it did before
signals existed. A (re)opened signal reports a change, because one may have been missed while
no one listened.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import time
from collections.abc import Callable

from scheduling.beat.outage import Outage
from scheduling.errors import StoreError
from scheduling.store.notify import ChangeSignal

__all__ = ["Wakeup"]

logger = logging.getLogger(__name__)


def _readable(fds: list[int], timeout: float) -> set[int]:
    """The descriptors of `fds` that turn readable within `timeout` seconds (poll(2): no
    FD_SETSIZE limit, unlike select)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    events = poller.poll(max(0, math.ceil(timeout * 1000)))
    return {fd for fd, _ in events}


class Wakeup:
    """Sleeps until a timeout, a signalled change or a nudge; see module doc."""

    def __init__(
        self,
        open_signal: Callable[[], ChangeSignal | None],
        look_interval: float,
        retry_interval: float,
        fallback_interval: float = math.inf,
    ) -> None:
        self._open_signal = open_signal
        self.look_interval = look_interval
        """How often a signal without a socket (SQLite) is looked at while sleeping."""
        self.retry_interval = retry_interval
        self.fallback_interval = fallback_interval
        """How often `wait(..., seen_seq)` reads the change sequence while sleeping."""
        self._signal: ChangeSignal | None = None
        self._look_first = False
        """A read on the signal's connection may have taken in a notification: look first."""
        self._next_read = math.inf
        """When the fallback read is due: kept across waits (many are shorter than it)."""
        self._retry_at = 0.0
        self._unavailable = False
        self._outage = Outage("store change signal", logger)
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    @property
    def listening(self) -> bool:
        """True while a change signal is open: the change sequence need not be polled often."""
        return self._signal is not None

    def nudge(self) -> None:
        """Wake a `wait` in progress (or the next one) at once; safe from any thread."""
        # A full pipe already holds a nudge; a closed one has nobody left to wake.
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"!")

    def wait(
        self,
        timeout: float,
        seen_seq: int | None = None,
        look: Callable[[], bool] | None = None,
    ) -> bool:
        """Sleep up to `timeout` seconds; True when woken by a (possible) change or a nudge.

        With `seen_seq`, the change sequence the caller has applied, the sequence is also read
        every `fallback_interval` while the signal is open, and any other value wakes it; so
        does `look` (the caller's own cheap check, e.g. a file's stat) returning True then.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self._look_first and self._signal is not None:
            self._look_first = False
            if self._signal_changed(self._signal):
                return True
        while True:
            if self._signal is None and self._reopen():
                return True
            signal = self._signal
            fd = signal.fileno() if signal is not None else None
            wake_at = deadline
            next_read = self._next_read if seen_seq is not None else math.inf
            if signal is not None:
                wake_at = min(wake_at, next_read)
                if fd is None:
                    wake_at = min(wake_at, time.monotonic() + self.look_interval)
            elif not self._unavailable:
                wake_at = min(wake_at, self._retry_at)
            watched = [self._read_fd] if fd is None else [self._read_fd, fd]
            readable = _readable(watched, wake_at - time.monotonic())
            if self._read_fd in readable:
                self._drain()
                return True
            if signal is not None:
                if (fd is None or fd in readable) and self._signal_changed(signal):
                    return True
                if time.monotonic() >= next_read and self._fallback_moved(signal, seen_seq, look):
                    return True
            if time.monotonic() >= deadline:
                return False

    def _fallback_moved(
        self, signal: ChangeSignal, seen_seq: int | None, look: Callable[[], bool] | None
    ) -> bool:
        """The fallback read: has the sequence (or the caller's `look`) moved?"""
        current = self.current_seq()
        if current is None or current != seen_seq:
            return True  # moved, or the signal failed: the caller reads through the store
        self._look_first = False
        return self._signal_changed(signal) or (look is not None and look())

    def current_seq(self) -> int | None:
        """The store's change sequence read on the signal's connection; None without one.

        A fault closes the signal (reopened later) and answers None: read it elsewhere.
        """
        signal = self._signal
        if signal is None:
            return None
        self._look_first = True
        self._next_read = time.monotonic() + self.fallback_interval
        try:
            return signal.current_seq()
        except StoreError as error:
            self._drop(signal, error)
            return None

    def pause(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds on the nudge pipe alone (a standby: no change signal
        to watch); True when nudged, e.g. by the lease thread that just took the lease."""
        if self._read_fd in _readable([self._read_fd], timeout):
            self._drain()
            return True
        return False

    def close(self) -> None:
        """Close the signal (it is reopened by the next `wait`)."""
        signal, self._signal = self._signal, None
        self._retry_at = 0.0
        if signal is not None:
            signal.close()

    def dispose(self) -> None:
        """Close the signal and the nudge pipe for good."""
        self.close()
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _reopen(self) -> bool:
        now = time.monotonic()
        if self._unavailable or now < self._retry_at:
            return False
        self._retry_at = now + self.retry_interval
        try:
            signal = self._open_signal()
        except StoreError as error:
            self._outage.failed(error)
            return False
        if signal is None:
            self._unavailable = True  # this store has none (in-memory SQLite): poll for good
            return False
        self._signal = signal
        self._next_read = now + self.fallback_interval
        self._outage.succeeded()
        return True

    def _signal_changed(self, signal: ChangeSignal) -> bool:
        try:
            return signal.changed()
        except StoreError as error:
            self._drop(signal, error)
            return True

    def _drop(self, signal: ChangeSignal, error: StoreError) -> None:
        self._outage.failed(error)
        self._signal = None
        self._retry_at = time.monotonic() + self.retry_interval
        with contextlib.suppress(Exception):  # its connection is gone either way
            signal.close()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._read_fd, 64):
                pass
