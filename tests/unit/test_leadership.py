"""The lease timer: a lone beat leads at once, a standby takes over when the lease ends, a
failing store makes the leader stand by once its lease may have expired, never crash; the
beat's status is reported from the lease thread after every round, a leader's in the same store
call as its renewal, a standby's in the same store call as its look at the lease."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from scheduling.beat.leadership import Leadership
from scheduling.errors import StoreError
from scheduling.store import BeatStatus, LeaseRecord
from tests.support.polling import wait_for

TTL = timedelta(seconds=3)


class FakeLeaseStore:
    """One lease row, with the store's rules: the token grows when the holder changes."""

    def __init__(self) -> None:
        self.lease: LeaseRecord | None = None
        self.failing = False
        self.statuses: list[tuple[str, str, BeatStatus]] = []
        """(store call, thread name, status) for every status written."""
        self.status_failing = False
        self.forgotten: list[timedelta] = []
        self.calls: list[str] = []
        """Every store call, in order."""

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.failing:
            raise StoreError("database is locked")

    def acquire_lease(
        self, holder: str, ttl: timedelta, now: datetime | None = None
    ) -> LeaseRecord | None:
        self._check("acquire_lease")
        now = now or datetime.now(UTC)  # the store's clock
        lease = self.lease
        if lease is not None and lease.holder != holder and lease.expires_at > now:
            return None
        token = (lease.token if lease else 0) + (0 if lease and lease.holder == holder else 1)
        self.lease = LeaseRecord(holder, token, now + ttl, now)
        return self.lease

    def renew_lease(
        self,
        holder: str,
        token: int,
        ttl: timedelta,
        *,
        status: BeatStatus | None = None,
        forget_after: timedelta | None = None,
    ) -> bool:
        self._check("renew_lease")
        now = datetime.now(UTC)
        lease = self.lease
        renewed = lease is not None and lease.holder == holder and lease.token == token
        if renewed and lease is not None:
            self.lease = LeaseRecord(holder, token, now + ttl, lease.acquired_at)
            if forget_after is not None:
                self.forgotten.append(forget_after)
        if status is not None:
            role = "leader" if renewed else "standby"
            self._record("renew_lease", replace(status, role=role))
        return renewed

    def record_beat(self, status: BeatStatus) -> None:
        self._check("record_beat")
        if self.status_failing:
            raise StoreError("database is locked")
        self._record("record_beat", status)

    def prune_beats(self, older_than: timedelta) -> int:
        self._check("prune_beats")
        self.forgotten.append(older_than)
        return 0

    def _record(self, call: str, status: BeatStatus) -> None:
        self.statuses.append((call, threading.current_thread().name, status))

    def release_lease(self, holder: str, token: int) -> None:
        self._check("release_lease")
        if self.lease is not None and self.lease.holder == holder:
            self.lease = LeaseRecord(
                "", self.lease.token, self.lease.acquired_at, self.lease.acquired_at
            )

    def current_lease(self) -> LeaseRecord | None:
        self._check("current_lease")
        return self.lease

    def watch_lease(self, holder: str, *, status: BeatStatus | None = None) -> LeaseRecord | None:
        self._check("watch_lease")
        now = datetime.now(UTC)  # the store's clock
        lease = self.lease
        if lease is None or lease.holder in ("", holder) or lease.expires_at <= now:
            return None
        if status is not None:
            if self.status_failing:
                raise StoreError("database is locked")
            self._record("watch_lease", replace(status, role="standby"))
        return replace(lease, observed_at=now)


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


def test_taking_the_lease_on_the_lease_thread_wakes_the_loop() -> None:
    """A standby's loop sleeps; the lease thread wakes it when it takes the lease. The first
    round, on the starting thread, and renewals wake nobody."""
    store = FakeLeaseStore()
    woken: list[str] = []
    leader = Leadership(store, "a", TTL, on_lead=lambda: woken.append("a"))
    standby = Leadership(store, "b", timedelta(seconds=0.3), on_lead=lambda: woken.append("b"))
    leader.run_round()
    leader.run_round()
    standby.start()
    try:
        assert woken == []
        leader.stop()  # hands the lease back: the standby's thread takes it next round
        wait_for(lambda: woken == ["b"], 5, "the lease thread's wake-up")
        assert standby.token == 2
    finally:
        standby.stop()


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


def status_of(leading: bool) -> BeatStatus:
    role = "leader" if leading else "standby"
    return BeatStatus("a", "host", 1, role, datetime.now(UTC), None)


def test_the_status_is_written_from_the_lease_thread_after_every_round() -> None:
    store = FakeLeaseStore()
    forget = timedelta(minutes=1)
    leader = Leadership(store, "a", timedelta(seconds=0.3), status_of, forget_after=forget)
    leader.start()
    try:
        wait_for(lambda: len(store.statuses) >= 3)
    finally:
        leader.stop()
    assert {thread for _, thread, _ in store.statuses} == {"periodic-lease"}
    assert all(status.role == "leader" for _, _, status in store.statuses)
    # The first round's status is written alone, every renewal's with the renewal itself.
    calls = [call for call, _, _ in store.statuses]
    assert calls[0] == "record_beat"
    assert set(calls[1:]) == {"renew_lease"}
    assert set(store.forgotten) == {forget}
    assert store.lease is not None
    assert store.lease.holder == ""  # stop() handed the lease back after the last report


def test_a_renewal_that_fails_reports_standby_in_the_same_call() -> None:
    store = FakeLeaseStore()
    leader = Leadership(store, "a", TTL, status_of)
    leader.run_round()
    store.lease = LeaseRecord("b", 2, datetime.now(UTC) + TTL, datetime.now(UTC))
    leader.run_round()
    assert leader.token is None
    assert store.statuses[-1][0] == "renew_lease"
    assert store.statuses[-1][2].role == "standby"


def test_a_failing_status_never_stops_the_lease_timer() -> None:
    store = FakeLeaseStore()
    store.status_failing = True  # the standby's separate status write fails
    built: list[bool] = []

    def broken(leading: bool) -> BeatStatus:
        built.append(leading)
        raise RuntimeError("a bug in the status")

    leader = Leadership(store, "a", timedelta(seconds=0.3), broken)
    leader.start()
    try:
        wait_for(lambda: len(built) >= 3)
        assert leader.token == 1  # the renewals went on without a status
    finally:
        leader.stop()
    failing = Leadership(FakeLeaseStore(), "b", timedelta(seconds=0.3), status_of)
    assert isinstance(failing.store, FakeLeaseStore)
    failing.store.status_failing = True
    failing.start()
    try:
        wait_for(lambda: len(failing.store.statuses) >= 2)  # type: ignore[attr-defined]
        assert failing.token == 1
    finally:
        failing.stop()


def test_a_leader_that_hands_over_lets_a_standby_lead_and_stays_out_meanwhile() -> None:
    store = FakeLeaseStore()
    leader, standby = Leadership(store, "a", TTL), Leadership(store, "b", TTL)
    leader.run_round()
    standby.run_round()
    leader.hand_over("ticks failing", stand_by=60.0)
    assert leader.token is None
    assert store.lease is not None
    assert store.lease.holder == ""  # released, not left to lapse
    assert leader.run_round() <= TTL.total_seconds() / 3
    assert leader.token is None, "took the lease back while standing by"
    standby.run_round()
    assert standby.token == 2
    leader.run_round()
    assert leader.token is None


def test_a_lone_beat_takes_the_lease_back_once_it_has_stood_by() -> None:
    store = FakeLeaseStore()
    leader = Leadership(store, "a", TTL)
    leader.run_round()
    leader.hand_over("ticks failing", stand_by=0.2)
    assert 0 < leader.run_round() <= 0.2
    assert leader.token is None

    def leads_again() -> bool:
        leader.run_round()
        return leader.leading

    wait_for(leads_again, 5, "the lease taken back after standing by", interval=0.05)
    assert leader.token == 2
    assert leader.generation == 2  # a new term: the scheduler reloads its table


def test_handing_over_survives_a_store_that_cannot_release() -> None:
    store = FakeLeaseStore()
    leader = Leadership(store, "a", TTL)
    leader.run_round()
    store.failing = True
    leader.hand_over("ticks failing", stand_by=60.0)  # logged; the lease lapses on its own
    assert leader.token is None


def test_a_standby_round_is_one_store_call_while_another_beat_leads() -> None:
    store = FakeLeaseStore()
    leader, standby = Leadership(store, "a", TTL), Leadership(store, "b", TTL, status_of)
    leader.run_round()
    assert store.lease is not None
    store.lease = replace(store.lease, expires_at=datetime.now(UTC) + timedelta(seconds=0.5))
    store.calls.clear()

    wait = standby.run_round()

    assert store.calls == ["watch_lease"]
    assert [(call, status.role) for call, _, status in store.statuses] == [
        ("watch_lease", "standby")
    ]
    assert standby.token is None
    assert 0.4 < wait <= 0.51  # wakes when the lease ends, not a full interval later


def test_a_standby_without_a_status_only_looks() -> None:
    store = FakeLeaseStore()
    leader, standby = Leadership(store, "a", TTL), Leadership(store, "b", TTL)
    leader.run_round()
    store.calls.clear()

    assert standby.run_round() == TTL.total_seconds() / 3
    assert store.calls == ["watch_lease"]
    assert store.statuses == []


def test_a_standby_takes_over_a_lapsed_lease_and_reports_as_leader() -> None:
    store = FakeLeaseStore()
    leader, standby = Leadership(store, "a", TTL), Leadership(store, "b", TTL, status_of)
    leader.run_round()
    assert store.lease is not None
    store.lease = replace(store.lease, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    store.calls.clear()

    assert standby.run_round() == TTL.total_seconds() / 3

    assert standby.token == 2
    assert store.calls == ["watch_lease", "acquire_lease", "record_beat"]
    assert [(call, status.role) for call, _, status in store.statuses] == [
        ("record_beat", "leader")
    ]


def test_a_lease_taken_between_the_look_and_the_attempt_is_waited_out() -> None:
    class RacingStore(FakeLeaseStore):
        """Another beat takes the free lease right after this beat's look."""

        def watch_lease(
            self, holder: str, *, status: BeatStatus | None = None
        ) -> LeaseRecord | None:
            seen = super().watch_lease(holder, status=status)
            now = datetime.now(UTC)
            self.lease = LeaseRecord("c", 7, now + timedelta(seconds=0.5), now)
            return seen

    store = RacingStore()
    standby = Leadership(store, "b", TTL, status_of)

    wait = standby.run_round()

    assert standby.token is None
    assert store.calls == ["watch_lease", "acquire_lease", "current_lease", "record_beat"]
    assert store.statuses[-1][2].role == "standby"
    assert 0.4 < wait <= 0.51


def test_a_beat_standing_by_after_handing_over_reports_without_looking() -> None:
    store = FakeLeaseStore()
    leader = Leadership(store, "a", TTL, status_of)
    leader.run_round()
    leader.hand_over("ticks failing", stand_by=60.0)
    store.calls.clear()
    store.statuses.clear()

    assert leader.run_round() == TTL.total_seconds() / 3

    assert store.calls == ["record_beat"]
    assert [status.role for _, _, status in store.statuses] == ["standby"]
    assert leader.token is None


def test_a_failing_look_is_a_store_outage_that_the_standby_rides_out() -> None:
    store = FakeLeaseStore()
    leader, standby = Leadership(store, "a", TTL), Leadership(store, "b", TTL, status_of)
    leader.run_round()
    store.failing = True

    assert 0 < standby.run_round() <= TTL.total_seconds() / 3
    assert standby.store_failing
    store.failing = False
    standby.run_round()
    assert not standby.store_failing
    assert store.statuses[-1][0] == "watch_lease"
