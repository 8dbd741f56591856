"""One bad entry never stops the others: beat's tick against poison written into the store.

A real SQLite store and a real `DatabaseScheduler`, ticked in the test's thread; the broker
is a recording stand-in (the subject is the tick, not RabbitMQ: `tests/faults/
test_beat_broker_refusals.py` runs a real broker). Hypothesis generates entries with extreme but
accepted values, and poison rows (values the API refuses today, as a store written before the
bounds holds them) are written with plain SQL. Properties: `_tick` never raises, every canary
entry is dispatched in every tick it falls due, accepted entries are never put in error, every
poison entry is in error (in the store's fault table, as the API shows it) and keeps its
backoff.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import update

from scheduling.beat import dispatcher as dispatcher_module
from scheduling.beat.scheduler import DatabaseScheduler
from scheduling.broker.publisher import OutgoingRun
from scheduling.celery.app import create_celery
from scheduling.config.bounds import LATEST, MAX_DURATION
from scheduling.config.settings import (
    AppSettings,
    BeatSettings,
    BrokerSettings,
    QueueSettings,
    ScheduleEntry,
    Settings,
)
from scheduling.store import RunState, Store
from scheduling.store.schema import entries
from tests.support.polling import wait_for
from tests.support.publishers import RecordingPublisher

pytestmark = pytest.mark.integration

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"
CANARIES = ("canary-a", "canary-b", "canary-c")


@contextlib.contextmanager
def leading_beat(
    directory: Path, prepare: Callable[[Store], None]
) -> Iterator[tuple[DatabaseScheduler, Store, RecordingPublisher]]:
    url = f"sqlite:///{directory / 'periodic.db'}"
    store = Store.open(url)
    prepare(store)
    config = Settings(
        app=AppSettings(database_url=SecretStr(url)),
        broker=BrokerSettings(url=SecretStr("amqp://guest:guest@127.0.0.1:1//")),
        queues={"default": QueueSettings(default=True)},
        beat=BeatSettings(scheduler="database", lease_ttl=timedelta(seconds=2)),
        schedule={},
    )
    scheduler = DatabaseScheduler(app=create_celery(config), lazy=True)
    publisher = RecordingPublisher()
    scheduler.publisher = publisher  # type: ignore[assignment]
    scheduler.store = store
    scheduler.setup_schedule()
    try:
        wait_for(lambda: scheduler.leadership is not None and scheduler.leadership.leading)
        yield scheduler, store, publisher
    finally:
        scheduler.close()


def canary() -> ScheduleEntry:
    return ScheduleEntry(task=HEARTBEAT, every=timedelta(seconds=1))


def poison_rows() -> dict[str, tuple[dict[str, object], str | None]]:
    """Name -> (stored definition JSON, or raw text) for each kind of poison."""
    far = "9999-12-31T23:59:58Z"
    return {
        "p-jitter": ({"task": HEARTBEAT, "cron": "* * * * *", "jitter": "100000000d"}, None),
        "p-grace": ({"task": HEARTBEAT, "every": "5s", "misfire_grace": "1000000d"}, None),
        "p-expires": ({"task": HEARTBEAT, "every": "5s", "expires": "3000000d"}, None),
        "p-start": ({"task": HEARTBEAT, "every": "1s", "start": far}, None),
        "p-queue": ({"task": HEARTBEAT, "every": "1s", "queue": "gone"}, None),
        "p-garbage": ({}, "{not json"),
    }


HARMLESS_TO_BEAT = {"p-start"}
"""Poison for the API's reads (before the bounds), but beat computes it without error."""


def inject_poison(store: Store, names: Sequence[str], due: datetime) -> None:
    rows = poison_rows()
    with store._db.write() as conn:
        for name in names:
            definition, raw = rows[name]
            jitter_us, next_run_at = 0, due
            if definition.get("jitter") == "100000000d":
                # The offset is a deterministic fraction of the jitter: from the last second of
                # 9999 any offset of a second or more overflows (from now, ~3% would not).
                jitter_us = 100_000_000 * 86_400 * 10**6
                next_run_at = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
            conn.execute(
                update(entries)
                .where(entries.c.name == name)
                .values(
                    definition=raw if raw is not None else json.dumps(definition),
                    jitter_us=jitter_us,
                    next_run_at=next_run_at,
                )
            )


durations = st.timedeltas(min_value=timedelta(seconds=1), max_value=MAX_DURATION)
accepted = st.builds(
    lambda every, jitter_share, grace, expires, start, catchup, zone: ScheduleEntry(
        task=HEARTBEAT,
        every=every,
        jitter=min(timedelta(days=1), every * jitter_share)
        // timedelta(seconds=1)
        * timedelta(seconds=1),
        misfire_grace=grace,
        expires=expires,
        start=start,
        catchup=catchup,
        timezone=zone,
    ),
    every=durations,
    jitter_share=st.floats(min_value=0, max_value=0.99),
    grace=st.none() | durations,
    expires=st.sampled_from(["auto", "never"]) | durations,
    start=st.none()
    | st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=LATEST.replace(tzinfo=None) - timedelta(days=2)
    ).map(lambda d: d.replace(tzinfo=UTC)),
    catchup=st.sampled_from(["skip", "latest", "all"]),
    zone=st.sampled_from(["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Berlin"]),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    extremes=st.lists(accepted, max_size=4),
    poison=st.lists(st.sampled_from(sorted(poison_rows())), unique=True, max_size=6),
)
def test_a_tick_never_raises_and_healthy_entries_keep_dispatching(
    extremes: list[ScheduleEntry], poison: list[str]
) -> None:
    now = datetime.now(UTC)
    # A slot of every 1s and 5s grid (at most 5 s ago), so each entry has a slot due now.
    due = datetime.fromtimestamp(now.timestamp() // 5 * 5, UTC)
    names = [f"x-{i}" for i in range(len(extremes))]

    def prepare(store: Store) -> None:
        rows = [(name, canary(), due) for name in CANARIES]
        rows += [(name, e, due) for name, e in zip(names, extremes, strict=True)]
        rows += [(name, canary(), due) for name in poison]
        store.bulk_create_entries(rows)
        inject_poison(store, poison, due)

    with (
        tempfile.TemporaryDirectory() as directory,
        leading_beat(Path(directory), prepare) as (
            scheduler,
            store,
            publisher,
        ),
    ):
        for _ in range(3):
            scheduler._tick()  # raises if anything escapes the per-entry isolation
            scheduler._flush_faults()
        assert set(CANARIES) <= publisher.entries_sent()
        stored_faults = store.entry_faults()
        failing = set(poison) - HARMLESS_TO_BEAT
        assert set(stored_faults) == failing, {n: f.message for n, f in stored_faults.items()}
        assert not set(names) & set(scheduler.table.faults.active)
        for name in failing:
            assert stored_faults[name].retry_at is not None
            assert stored_faults[name].retry_at > now
        # The canaries keep their schedule in the next second too.
        sent_before = len(publisher.sent)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(
            [r for r in publisher.sent[sent_before:] if r.entry in CANARIES]
        ) < len(CANARIES):
            time.sleep(scheduler._tick())
        later = {r.entry for r in publisher.sent[sent_before:]}
        assert set(CANARIES) <= later


def test_a_refused_run_fails_after_bounded_attempts_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    due = datetime.now(UTC) - timedelta(milliseconds=500)

    def prepare(store: Store) -> None:
        store.bulk_create_entries([(name, canary(), due) for name in (*CANARIES, "refused")])

    with leading_beat(tmp_path, prepare) as (scheduler, store, publisher):
        publisher.refuse.add("refused")
        deadline = time.monotonic() + 8
        failed: list[str] = []
        while time.monotonic() < deadline and not failed:
            time.sleep(scheduler.tick())
            failed = [
                r.task_id
                for r in store.runs_for_entry("refused", limit=10)
                if r.state is RunState.FAILED
            ]
        assert failed, "the refused run never ended failed"
        (run,) = [r for r in store.runs_for_entry("refused", limit=10) if r.task_id == failed[0]]
        assert run.error_type == "BrokerRefused"
        assert "unroutable" in (run.error_message or "")
        assert not scheduler.broker_outage.down, "a refusal is not an outage"
        assert "refused" in store.entry_faults()
        counts = {name: len(store.runs_for_entry(name, limit=100)) for name in CANARIES}
        assert min(counts.values()) >= 2, counts


def test_a_message_that_closes_the_channel_is_found_and_failed_alone(tmp_path: Path) -> None:
    due = datetime.now(UTC) - timedelta(milliseconds=500)

    def prepare(store: Store) -> None:
        store.bulk_create_entries([(name, canary(), due) for name in (*CANARIES, "huge")])

    with leading_beat(tmp_path, prepare) as (scheduler, store, publisher):
        publisher.too_large.add("huge")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and "huge" not in store.entry_faults():
            time.sleep(scheduler.tick())
        failed = [r for r in store.runs_for_entry("huge", limit=10) if r.state is RunState.FAILED]
        assert failed, "the oversized run never ended failed"
        assert "message too large" in (failed[0].error_message or "")
        assert not scheduler.broker_outage.down
        assert set(CANARIES) <= publisher.entries_sent()


def test_runs_left_pending_never_hide_the_ones_behind_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "REPUBLISH_BATCH", 2)
    now = datetime.now(UTC)

    def prepare(store: Store) -> None:
        store.bulk_create_entries([(name, canary(), None) for name in ("held", "free")])

    with leading_beat(tmp_path, prepare) as (scheduler, store, publisher):
        assert scheduler.dispatcher is not None
        held = [store.claim_manual_run("held", now, f"held-{i}", "default") for i in range(4)]
        free = store.claim_manual_run("free", now, "free-0", "default")
        for run in held:  # refused before, waiting for their retry: the sweep leaves them
            outgoing = OutgoingRun(run.task_id, HEARTBEAT, [], {}, "default", "held", now)
            scheduler.dispatcher._refusals[run.task_id] = (1, outgoing, now + timedelta(hours=1))
        assert scheduler.dispatcher.republish_pending(now) == 1
        assert [run.task_id for run in publisher.sent] == [free.task_id]
