"""The lease timer: a lone beat leads at once, a standby takes over when the lease ends, a
failing store makes the leader stand by once its lease may have expired, never crash; the
beat's status is reported from the lease thread after every round."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from scheduling.beat.leadership import Leadership
from scheduling.errors import StoreError
from scheduling.store import LeaseRecord
from tests.support.polling import wait_for

TTL = timedelta(seconds=3)


class FakeLeaseStore:
    """One lease row, with the store's rules: the token grows when the holder changes."""

    def __init__(self) -> None:
        self.lease: LeaseRecord | None = None
        self.failing = False

    def _check(self) -> None:
        if self.failing:
            raise StoreError("database is locked")

    def acquire_lease(
        self, holder: str, ttl: timedelta, now: datetime | None = None
    ) -> LeaseRecord | None:
        self._check()
        now = now or datetime.now(UTC)  # the store's clock
        lease = self.lease
        if lease is not None and lease.holder != holder and lease.expires_at > now:
            return None
        token = (lease.token if lease else 0) + (0 if lease and lease.holder == holder else 1)
        self.lease = LeaseRecord(holder, token, now + ttl, now)
        return self.lease

    def renew_lease(
        self, holder: str, token: int, ttl: timedelta, now: datetime | None = None
    ) -> bool:
        self._check()
        now = now or datetime.now(UTC)
        lease = self.lease
        if lease is None or lease.holder != holder or lease.token != token:
            return False
        self.lease = LeaseRecord(holder, token, now + ttl, lease.acquired_at)
        return True

    def release_lease(self, holder: str, token: int) -> None:
        self._check()
        if self.lease is not None and self.lease.holder == holder:
            self.lease = LeaseRecord(
                "", self.lease.token, self.lease.acquired_at, self.lease.acquired_at
            )

    def current_lease(self) -> LeaseRecord | None:
        self._check()
        return self.lease


def test_a_lone_beat_leads_after_one_round() -> None:
    store = FakeLeaseStore()
    leader = Leadership(store, "a", TTL)
    assert leader.run_round() == TTL.total_seconds() / 3
    assert leader.token == 1
    assert leader.generation == 1


def test_a_standby_waits_until_the_lease_ends_then_takes_over_with_a_new_token() -> None:
    store = FakeLeaseStore()
    leader, standby = Leadership(store, "a", TTL), Leadership(store, "b", TTL)
    leader.run_round()
    wait = standby.run_round()
    assert standby.token is None
    assert 0 < wait <= TTL.total_seconds() / 3
    assert store.lease is not None
    store.lease = LeaseRecord("a", 1, store.lease.expires_at - TTL, store.lease.acquired_at)
    standby.run_round()
    assert standby.token == 2
    # The old leader learns on its next renewal and stands by without raising.
    leader.run_round()
    assert leader.token is None


def test_a_released_lease_is_taken_at_the_next_round() -> None:
    store = FakeLeaseStore()
    leader, standby = Leadership(store, "a", TTL), Leadership(store, "b", TTL)
    leader.run_round()
    leader.stop()
    standby.run_round()
    assert standby.token == 2


def test_renewals_failing_past_the_ttl_make_the_leader_stand_by() -> None:
    store = FakeLeaseStore()
    leader = Leadership(store, "a", timedelta(seconds=1))
    leader.run_round()
    store.failing = True
    leader.run_round()
    assert leader.token == 1  # the lease cannot have expired yet
    time.sleep(1.05)
    leader.run_round()
    assert leader.token is None
    store.failing = False
    leader.run_round()
    assert leader.token == 1  # same holder again: the store keeps the token
    assert leader.generation == 2


def test_step_down_stops_claims_until_the_lease_is_won_again() -> None:
    store = FakeLeaseStore()
    leader = Leadership(store, "a", TTL)
    leader.run_round()
    leader.step_down("LeaseLost")
    assert leader.token is None


def test_the_status_callback_runs_in_the_lease_thread_after_every_round() -> None:
    store = FakeLeaseStore()
    reports: list[tuple[str, bool]] = []
    leader = Leadership(
        store,
        "a",
        timedelta(seconds=0.3),
        lambda leading: reports.append((threading.current_thread().name, leading)),
    )
    leader.start()
    try:
        wait_for(lambda: len(reports) >= 3)
    finally:
        leader.stop()
    assert {name for name, _ in reports} == {"periodic-lease"}
    assert all(leading for _, leading in reports)
    assert store.lease is not None
    assert store.lease.holder == ""  # stop() handed the lease back after the last report


def test_a_failing_status_callback_never_stops_the_lease_timer() -> None:
    store = FakeLeaseStore()
    calls: list[bool] = []

    def report(leading: bool) -> None:
        calls.append(leading)
        raise StoreError("database is locked")

    leader = Leadership(store, "a", timedelta(seconds=0.3), report)
    leader.start()
    try:
        wait_for(lambda: len(calls) >= 3)
        assert leader.token == 1
    finally:
        leader.stop()
