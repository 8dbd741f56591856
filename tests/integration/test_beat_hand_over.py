"""A leader whose tick keeps failing for a reason of its own hands the lease to a standby.

Two real `DatabaseScheduler`s on one SQLite store, each ticked in its own thread as Celery's
loop would, with their real lease threads; the broker is a recording stand-in (the subject is
who leads). The leader's tick breaks for good (a bug of its own: not an entry's, the store's or
the broker's), while its lease thread stays healthy and would renew forever: the standby must
take over and dispatch, and the broken beat must not take the lease back while it stands by.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from scheduling.beat.scheduler import HAND_OVER_AFTER
from tests.support.polling import wait_for
from tests.support.ticking_beats import TickingBeat, one_entry_settings

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=2)


@contextlib.contextmanager
def two_beats(directory: Path) -> Iterator[tuple[TickingBeat, TickingBeat]]:
    url = f"sqlite:///{directory / 'periodic.db'}"
    settings = one_entry_settings(url, timedelta(seconds=1), TTL, timedelta(seconds=0.4))
    first = TickingBeat(settings, "beat-a")
    wait_for(lambda: first.leading, 10, "the first beat leading")
    second = TickingBeat(settings, "beat-b")
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_a_leader_whose_ticks_keep_failing_hands_over_and_the_standby_dispatches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scheduling")
    with two_beats(tmp_path) as (broken, standby):
        wait_for(lambda: "pulse" in broken.publisher.entries_sent(), 10, "the leader dispatching")
        assert not standby.leading

        def bug(token: int, mono: float) -> None:
            raise RuntimeError("a bug in this beat's own tick")

        broken.scheduler._lead = bug  # type: ignore[method-assign]
        wait_for(lambda: standby.leading, 3 * TTL.total_seconds(), "the standby taking over")
        wait_for(
            lambda: "pulse" in standby.publisher.entries_sent(), 10, "the new leader dispatching"
        )
        # While it stands by (one TTL), the broken beat leaves the lease alone.
        assert not broken.leading
        failed = [r for r in caplog.records if "beat tick failed" in r.getMessage()]
        assert len(failed) >= HAND_OVER_AFTER
        assert any("handing the lease over" in r.getMessage() for r in caplog.records)


def test_a_tick_that_fails_now_and_then_keeps_the_lease(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with two_beats(tmp_path) as (flaky, standby):
        wait_for(lambda: "pulse" in flaky.publisher.entries_sent(), 10, "the leader dispatching")
        lead = flaky.scheduler._lead
        calls = 0

        def sometimes(token: int, mono: float) -> None:
            nonlocal calls
            calls += 1
            if calls % HAND_OVER_AFTER == 0:  # never HAND_OVER_AFTER failures in a row
                raise RuntimeError("a one-off")
            lead(token, mono)

        flaky.scheduler._lead = sometimes  # type: ignore[method-assign]
        wait_for(lambda: calls >= 4 * HAND_OVER_AFTER, 20, "a dozen ticks")
        assert flaky.leading
        assert not standby.leading
        assert not any("handing the lease over" in r.getMessage() for r in caplog.records)
