"""Beat's sleep: woken by a signal's socket, by a nudge, by the change sequence it reads as the
poll fallback, or at its timeout; a broken signal is dropped, polled around and reopened. (The
real signals are tested in tests/integration/test_change_push.py.)"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from scheduling.beat.wakeup import Wakeup
from scheduling.errors import StoreError


class PipeSignal:
    """A change signal whose socket is a pipe the test writes to."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.broken = False
        self.closed = False
        self.seq = 7
        self.reads = 0

    def notify(self) -> None:
        os.write(self.write_fd, b"x")

    def fileno(self) -> int | None:
        return self.read_fd

    def changed(self) -> bool:
        if self.broken:
            raise StoreError("listener lost")
        try:
            return bool(os.read(self.read_fd, 64))
        except BlockingIOError:
            return False

    def current_seq(self) -> int:
        if self.broken:
            raise StoreError("listener lost")
        self.reads += 1
        return self.seq

    def close(self) -> None:
        self.closed = True
        os.close(self.read_fd)
        os.close(self.write_fd)


@pytest.fixture
def signals() -> list[PipeSignal]:
    return []


@pytest.fixture
def wakeup(signals: list[PipeSignal]) -> Iterator[Wakeup]:
    def open_signal() -> PipeSignal:
        signals.append(PipeSignal())
        return signals[-1]

    sleeper = Wakeup(open_signal, look_interval=0.05, retry_interval=0.2, fallback_interval=0.1)
    yield sleeper
    sleeper.dispose()


def timed(wakeup: Wakeup, timeout: float, seen_seq: int | None = None) -> tuple[bool, float]:
    started = time.monotonic()
    woken = wakeup.wait(timeout, seen_seq)
    return woken, time.monotonic() - started


def test_opening_the_signal_counts_as_a_change(wakeup: Wakeup) -> None:
    woken, _ = timed(wakeup, 5)
    assert woken
    assert wakeup.listening


def test_without_a_change_it_sleeps_the_whole_timeout(wakeup: Wakeup) -> None:
    wakeup.wait(0)
    woken, took = timed(wakeup, 0.2)
    assert not woken
    assert took >= 0.19


def test_a_notification_wakes_it_at_once(wakeup: Wakeup, signals: list[PipeSignal]) -> None:
    wakeup.wait(0)
    threading.Timer(0.05, signals[0].notify).start()
    woken, took = timed(wakeup, 10)
    assert woken
    assert took < 5


def test_a_nudge_from_another_thread_wakes_it(wakeup: Wakeup) -> None:
    wakeup.wait(0)
    threading.Timer(0.05, wakeup.nudge).start()
    woken, took = timed(wakeup, 10)
    assert woken
    assert took < 5


def test_a_standby_pause_ends_at_a_nudge_or_its_timeout(wakeup: Wakeup) -> None:
    started = time.monotonic()
    assert wakeup.pause(0.05) is False
    assert time.monotonic() - started >= 0.04
    threading.Timer(0.05, wakeup.nudge).start()
    started = time.monotonic()
    assert wakeup.pause(10) is True
    assert time.monotonic() - started < 5


def test_a_broken_signal_is_dropped_then_reopened(
    wakeup: Wakeup, signals: list[PipeSignal]
) -> None:
    wakeup.wait(0)
    assert wakeup.current_seq() == 7
    first = signals[0]
    first.broken = True
    first.notify()
    assert wakeup.wait(5)  # the fault itself wakes the sleeper: a change may have been missed
    assert not wakeup.listening
    assert first.closed
    assert wakeup.current_seq() is None  # read the sequence through the store meanwhile
    woken, took = timed(wakeup, 10)  # reopened after retry_interval, which again counts
    assert woken
    assert took < 5
    assert wakeup.listening
    assert len(signals) == 2


def test_the_fallback_reads_the_sequence_while_sleeping_and_sleeps_on_if_unmoved(
    wakeup: Wakeup, signals: list[PipeSignal]
) -> None:
    wakeup.wait(0)
    woken, took = timed(wakeup, 0.35, seen_seq=7)
    assert not woken
    assert took >= 0.34
    assert signals[0].reads >= 2  # every fallback_interval (0.1 s), without waking the caller


def test_a_sequence_moved_without_a_notification_wakes_it_at_the_fallback_read(
    wakeup: Wakeup, signals: list[PipeSignal]
) -> None:
    wakeup.wait(0)
    signals[0].seq = 8  # a writer that sent no notification
    woken, took = timed(wakeup, 10, seen_seq=7)
    assert woken
    assert took < 5
    assert signals[0].reads == 1


def test_waits_shorter_than_the_fallback_interval_still_read_at_its_pace(
    wakeup: Wakeup, signals: list[PipeSignal]
) -> None:
    """A leader with an entry due every 50 ms never sleeps a whole fallback interval."""
    wakeup.wait(0)
    signals[0].seq = 8  # moved without a notification
    started = time.monotonic()
    woken = False
    while not woken and time.monotonic() - started < 5:
        woken = wakeup.wait(0.05, seen_seq=7)
    assert woken
    assert signals[0].reads == 1


def test_a_look_that_says_yes_wakes_it_at_the_fallback_read(wakeup: Wakeup) -> None:
    wakeup.wait(0)
    looks: list[float] = []

    def settings_touched() -> bool:
        looks.append(time.monotonic())
        return len(looks) >= 2

    woken, took = timed_look(wakeup, 10, settings_touched)
    assert woken
    assert len(looks) == 2
    assert took < 5


def timed_look(wakeup: Wakeup, timeout: float, look: Callable[[], bool]) -> tuple[bool, float]:
    started = time.monotonic()
    woken = wakeup.wait(timeout, 7, look)
    return woken, time.monotonic() - started
