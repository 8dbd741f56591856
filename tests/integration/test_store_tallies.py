"""`Store.ledger_tallies` on both dialects: what /metrics counts, summed by the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.config.settings import ScheduleEntry
from scheduling.store import RunState, SlotClaim, Store

pytestmark = pytest.mark.integration

PING = ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1m")
BOUNDS = (0.5, 2.0, 10.0)


def test_finished_runs_dispatches_and_lag_since_a_point_in_time(store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(hours=1)
    store.create_entry("ping", PING, next_run_at=now)
    lease = store.acquire_lease("beat-a", timedelta(seconds=30), now)
    assert lease is not None
    claims = [
        SlotClaim("ping", now - timedelta(minutes=3), "t-ok", RunState.PENDING, queue="high"),
        SlotClaim("ping", now - timedelta(minutes=2), "t-fail", RunState.PENDING, queue="high"),
        SlotClaim("ping", now - timedelta(minutes=1), "t-open", RunState.PENDING, queue="high"),
        SlotClaim("ping", now - timedelta(minutes=4), "t-miss", RunState.MISSED, queue="high"),
        SlotClaim("ping", now - timedelta(hours=3), "t-old", RunState.PENDING, queue="high"),
    ]
    store.claim_slots(claims, holder="beat-a", token=lease.token, next_runs={})
    store.mark_dispatched(["t-ok"], now - timedelta(minutes=3) + timedelta(seconds=1.5))
    store.mark_dispatched(["t-fail"], now - timedelta(minutes=2) + timedelta(seconds=0.25))
    store.mark_dispatched(["t-open"], now - timedelta(minutes=1) + timedelta(seconds=20))
    store.mark_dispatched(["t-old"], now - timedelta(hours=3) + timedelta(seconds=1))
    store.record_run_finished("t-ok", RunState.SUCCEEDED, now, runtime=1.0)
    store.record_run_finished("t-fail", RunState.FAILED, now, runtime=30.0)
    store.record_run_finished("t-old", RunState.SUCCEEDED, now - timedelta(hours=2), runtime=1.0)

    tallies = store.ledger_tallies(since, per_entry=True, duration_bounds=BOUNDS, lag_bounds=BOUNDS)
    key = ("ping", "high")
    assert tallies.finished == {key: {"succeeded": 1, "failed": 1, "missed": 1}}
    assert tallies.dispatches == {key: 3}
    durations = tallies.durations[key]
    assert (durations.buckets, durations.count, durations.total) == ([0, 1, 1], 2, 31.0)
    lag = tallies.lags["high"]
    assert lag.buckets == [1, 2, 2]
    assert lag.count == 3
    assert lag.total == pytest.approx(21.75, abs=0.01)

    by_queue = store.ledger_tallies(
        since, per_entry=False, duration_bounds=BOUNDS, lag_bounds=BOUNDS
    )
    assert by_queue.dispatches == {("high",): 3}
    assert by_queue.finished == {("high",): {"succeeded": 1, "failed": 1, "missed": 1}}
