"""The lease runs on the database's clock: two beats whose host clocks differ by more than the
TTL neither steal a live lease nor lose their own, and failover still takes about one TTL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from scheduling.beat.leadership import Leadership
from scheduling.store import BeatStatus, Store

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=2)
SKEW = timedelta(seconds=11)


def fast_clock() -> datetime:
    return datetime.now(UTC) + SKEW


def slow_clock() -> datetime:
    return datetime.now(UTC) - SKEW


@pytest.mark.parametrize("skewed", [fast_clock, slow_clock], ids=["fast", "slow"])
def test_a_skewed_standby_neither_steals_a_live_lease_nor_waits_for_its_own_clock(
    store: Store, skewed: object
) -> None:
    leader = Leadership(store, "beat-a", TTL)
    standby = Leadership(store, "beat-b", TTL, clock=skewed)  # type: ignore[arg-type]
    leader.run_round()
    assert leader.leading
    deadline = time.monotonic() + 2 * TTL.total_seconds()
    while time.monotonic() < deadline:  # the leader renews, the standby keeps trying
        leader.run_round()
        standby.run_round()
        assert not standby.leading, "a standby with a skewed clock took a live lease"
        assert leader.leading
        time.sleep(0.1)
    lost = time.monotonic()  # the leader dies without releasing the lease
    while not standby.leading:
        time.sleep(min(standby.run_round(), 0.1))
        assert time.monotonic() - lost < TTL.total_seconds() + 1.5, "failover took too long"
    assert standby.token == 2  # a new holder, a new fencing token


def test_dead_beats_are_pruned_on_the_database_clock(store: Store) -> None:
    now = datetime.now(UTC)
    store.record_beat(BeatStatus("gone", "host", 1, "standby", now - timedelta(hours=1), None))
    store.record_beat(BeatStatus("alive", "host", 2, "leader", now, 0.1))
    assert store.prune_beats(timedelta(minutes=1)) == 1
    assert [beat.beat_id for beat in store.beats()] == ["alive"]
