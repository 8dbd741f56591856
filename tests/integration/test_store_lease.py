"""The beat lease and beat status on both dialects: take-over, renewal, fencing, release."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from scheduling.store import BeatStatus, LeaseRecord, Store
from scheduling.store.renewal import LEASE_CONNECTION_NAME
from tests.support.store_lookups import stored_lease

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)


def test_nobody_holds_the_lease_of_a_fresh_store(store: Store) -> None:
    assert store.current_lease() is None


def test_a_free_lease_is_taken_with_the_first_token(store: Store) -> None:
    lease = store.acquire_lease("beat-a", TTL, NOW)

    assert lease == LeaseRecord(holder="beat-a", token=1, expires_at=NOW + TTL, acquired_at=NOW)
    assert store.current_lease() == lease


def test_acquiring_again_renews_and_keeps_the_token(store: Store) -> None:
    first = store.acquire_lease("beat-a", TTL, NOW)
    assert first is not None

    again = store.acquire_lease("beat-a", TTL, NOW + timedelta(seconds=5))

    assert again is not None
    assert again.token == first.token
    assert again.acquired_at == NOW
    assert again.expires_at == NOW + timedelta(seconds=5) + TTL


def test_a_live_lease_of_another_holder_cannot_be_taken(store: Store) -> None:
    held = store.acquire_lease("beat-a", TTL, NOW)

    assert store.acquire_lease("beat-b", TTL, NOW + TTL - timedelta(milliseconds=1)) is None
    assert store.current_lease() == held


def test_an_expired_lease_is_taken_over_with_the_next_token(store: Store) -> None:
    old = store.acquire_lease("beat-a", TTL, NOW)
    assert old is not None
    later = NOW + TTL + timedelta(seconds=1)

    taken = store.acquire_lease("beat-b", TTL, later)

    assert taken == LeaseRecord(
        holder="beat-b", token=old.token + 1, expires_at=later + TTL, acquired_at=later
    )
    assert store.renew_lease("beat-a", old.token, TTL, later) is False
    assert store.acquire_lease("beat-a", TTL, later) is None


def test_renew_extends_only_the_current_holders_lease(store: Store) -> None:
    lease = store.acquire_lease("beat-a", TTL, NOW)
    assert lease is not None

    assert store.renew_lease("beat-a", lease.token, TTL, NOW + timedelta(seconds=8)) is True
    assert stored_lease(store).expires_at == NOW + timedelta(seconds=18)
    assert stored_lease(store).token == lease.token
    assert store.renew_lease("beat-a", lease.token + 1, TTL, NOW) is False
    assert store.renew_lease("beat-b", lease.token, TTL, NOW) is False


def test_a_lapsed_lease_nobody_took_can_still_be_renewed(store: Store) -> None:
    lease = store.acquire_lease("beat-a", TTL, NOW)
    assert lease is not None
    late = NOW + 3 * TTL

    assert store.renew_lease("beat-a", lease.token, TTL, late) is True
    assert store.current_lease() == LeaseRecord("beat-a", lease.token, late + TTL, NOW)


def test_release_frees_the_lease_at_once_and_the_token_keeps_growing(store: Store) -> None:
    lease = store.acquire_lease("beat-a", TTL, NOW)
    assert lease is not None

    store.release_lease("beat-a", lease.token)

    assert store.current_lease() is None
    successor = store.acquire_lease("beat-b", TTL, NOW + timedelta(seconds=1))
    assert successor is not None
    assert successor.token == lease.token + 1


def test_release_with_a_stale_token_leaves_the_new_holder_alone(store: Store) -> None:
    old = store.acquire_lease("beat-a", TTL, NOW)
    assert old is not None
    new = store.acquire_lease("beat-b", TTL, NOW + 2 * TTL)

    store.release_lease("beat-a", old.token)

    assert store.current_lease() == new


def test_concurrent_acquires_elect_exactly_one_holder(store_url: str, store: Store) -> None:
    contenders = [Store.open(store_url) for _ in range(4)]
    results: dict[str, LeaseRecord | None] = {}
    barrier = threading.Barrier(len(contenders))

    def contend(position: int) -> None:
        barrier.wait(timeout=30)
        results[f"beat-{position}"] = contenders[position].acquire_lease(
            f"beat-{position}", TTL, NOW
        )

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(contenders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for contender in contenders:
        contender.close()

    winners = [lease for lease in results.values() if lease is not None]
    assert len(results) == 4
    assert len(winners) == 1
    assert winners[0].token == 1
    assert store.current_lease() == winners[0]


def test_beats_report_their_status_by_id(store: Store) -> None:
    first = BeatStatus("b-1", "host-a", 100, "leader", NOW, 0.25)
    store.record_beat(first)
    store.record_beat(BeatStatus("a-2", "host-b", 200, "standby", NOW, None))

    updated = BeatStatus("b-1", "host-a", 101, "standby", NOW + TTL, None)
    store.record_beat(updated)

    assert store.beats() == [
        BeatStatus("a-2", "host-b", 200, "standby", NOW, None),
        updated,
    ]


def test_a_renewal_writes_the_status_in_the_same_transaction(store: Store) -> None:
    lease = store.acquire_lease("beat-a", TTL)
    assert lease is not None
    mine = BeatStatus("beat-a", "host-a", 100, "leader", NOW, 0.25)

    assert store.renew_lease("beat-a", lease.token, TTL, status=mine) is True
    assert store.beats() == [mine]

    # A renewal that fails reports the beat as standby in the same call.
    assert store.renew_lease("beat-a", lease.token + 1, TTL, status=mine) is False
    assert [beat.role for beat in store.beats()] == ["standby"]


def test_a_renewal_sets_the_expiry_on_the_store_clock(store: Store) -> None:
    lease = store.acquire_lease("beat-a", TTL)
    assert lease is not None
    before = store.current_lease()
    assert before is not None
    assert before.observed_at is not None

    assert store.renew_lease("beat-a", lease.token, TTL) is True

    after = store.current_lease()
    assert after is not None
    assert after.observed_at is not None
    assert before.observed_at + TTL <= after.expires_at <= after.observed_at + TTL


def test_a_renewing_leader_forgets_silent_beats_but_not_itself(store: Store) -> None:
    lease = store.acquire_lease("beat-a", TTL)
    assert lease is not None
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    store.record_beat(BeatStatus("gone", "host-b", 2, "standby", long_ago, None))
    stuck = BeatStatus("beat-a", "host-a", 1, "leader", long_ago, None)  # its loop hangs

    assert store.renew_lease("beat-a", lease.token, TTL, status=stuck, forget_after=TTL)

    assert store.beats() == [stuck]


def terminate_lease_connection(store_url: str) -> int:
    """End the lease thread's PostgreSQL connection from the server side, as a restart or a
    proxy's idle cut would; how many were ended."""
    engine = create_engine(store_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": LEASE_CONNECTION_NAME},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_dropped_lease_connection_is_reopened_by_the_next_renewal(
    store: Store, store_url: str
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("a SQLite file has no server to drop the connection")
    lease = store.acquire_lease("beat-a", TTL)
    assert lease is not None
    assert store.renew_lease("beat-a", lease.token, TTL)
    assert terminate_lease_connection(store_url) == 1
    # The round that finds it dead connects again and renews, as a pre-ping would have.
    assert store.renew_lease("beat-a", lease.token, TTL)


def test_a_standby_look_reads_a_live_lease_and_records_the_standby_in_one_go(
    store: Store,
) -> None:
    held = store.acquire_lease("beat-a", TTL)
    assert held is not None
    mine = BeatStatus("beat-b", "host-b", 200, "standby", NOW, None)
    before = stored_lease(store).observed_at
    assert before is not None

    seen = store.watch_lease("beat-b", status=mine)

    assert seen == held
    assert seen is not None
    assert seen.observed_at is not None
    assert before <= seen.observed_at < seen.expires_at  # the store's clock, read with the row
    assert 0 < seen.seconds_left(NOW) <= TTL.total_seconds()  # NOW (host clock) is ignored
    assert store.beats() == [mine]
    # Without a status it only reads.
    assert store.watch_lease("beat-c") == held
    assert store.beats() == [mine]


def test_a_standby_look_records_the_role_standby_whatever_it_is_given(store: Store) -> None:
    assert store.acquire_lease("beat-a", TTL) is not None
    confused = BeatStatus("beat-b", "host-b", 200, "leader", NOW, 0.5)

    assert store.watch_lease("beat-b", status=confused) is not None

    assert store.beats() == [BeatStatus("beat-b", "host-b", 200, "standby", NOW, 0.5)]


@pytest.mark.parametrize("state", ["free", "expired", "released", "ours"])
def test_a_standby_look_takes_and_writes_nothing_when_the_lease_is_takeable(
    store: Store, state: str
) -> None:
    if state == "expired":
        lease = store.acquire_lease("beat-a", TTL, NOW)  # NOW is long past on the store clock
        assert lease is not None
    elif state == "released":
        lease = store.acquire_lease("beat-a", TTL)
        assert lease is not None
        store.release_lease("beat-a", lease.token)
    elif state == "ours":
        assert store.acquire_lease("beat-b", TTL) is not None
    before = store.current_lease()
    terms = store.lease_terms(NOW - timedelta(days=365), NOW + timedelta(days=365))
    status = BeatStatus("beat-b", "host-b", 200, "standby", NOW, None)

    assert store.watch_lease("beat-b", status=status) is None

    after = store.current_lease()
    assert after == before
    if before is not None and after is not None:
        assert after.expires_at == before.expires_at
    assert store.lease_terms(NOW - timedelta(days=365), NOW + timedelta(days=365)) == terms
    assert store.beats() == []


def test_a_dropped_lease_connection_is_reopened_by_the_next_standby_look(
    store: Store, store_url: str
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("a SQLite file has no server to drop the connection")
    held = store.acquire_lease("beat-a", TTL)
    status = BeatStatus("beat-b", "host-b", 200, "standby", NOW, None)
    assert store.watch_lease("beat-b", status=status) == held
    assert terminate_lease_connection(store_url) == 1
    later = BeatStatus("beat-b", "host-b", 200, "standby", NOW + TTL, None)
    assert store.watch_lease("beat-b", status=later) == held
    assert store.beats() == [later]


def test_an_in_memory_store_looks_at_the_lease_through_its_pool() -> None:
    """Only the pool's connection sees an in-memory database: same answers, one transaction."""
    with Store.open("sqlite://") as store:
        status = BeatStatus("beat-b", "host-b", 200, "standby", NOW, None)
        assert store.watch_lease("beat-b", status=status) is None
        assert store.beats() == []
        held = store.acquire_lease("beat-a", TTL)

        seen = store.watch_lease("beat-b", status=status)

        assert seen == held
        assert seen is not None
        assert seen.observed_at is not None
        assert store.beats() == [status]
        assert store.watch_lease("beat-a", status=status) is None
