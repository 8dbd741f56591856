"""A burst is claimed, published and marked in chunks, so its first message leaves early.

Real store (SQLite file), real RabbitMQ: 1,600 entries fall due at once; the store and the
publisher are the real ones, wrapped to record the order of claims, sends and marks.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from pydantic import SecretStr

from scheduling.beat.scheduler import DISPATCH_CHUNK, FIRST_CHUNK, DatabaseScheduler
from scheduling.broker.topology import queue_status
from scheduling.celery.app import create_celery
from scheduling.config.settings import (
    AppSettings,
    BeatSettings,
    BrokerSettings,
    QueueSettings,
    ScheduleEntry,
    Settings,
)
from scheduling.store import Store

pytestmark = [pytest.mark.integration]

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"
BURST = 1600


@pytest.fixture
def bursting_beat(
    tmp_path: Path, broker_url: str
) -> Iterator[tuple[DatabaseScheduler, str, list[tuple[str, int]]]]:
    queue = f"burst-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'periodic.db'}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    definition = ScheduleEntry(task=HEARTBEAT, every=timedelta(hours=1), queue=queue)
    with Store.open(url) as store:
        store.bulk_create_entries([(f"burst-{i}", definition, hour) for i in range(BURST)])
    settings = Settings(
        app=AppSettings(database_url=SecretStr(url)),
        broker=BrokerSettings(url=SecretStr(broker_url)),
        queues={queue: QueueSettings(default=True)},
        beat=BeatSettings(lease_ttl=timedelta(seconds=30)),
        schedule={},
    )
    scheduler = DatabaseScheduler(app=create_celery(settings), lazy=True)
    events: list[tuple[str, int]] = []
    scheduler.setup_schedule()
    assert scheduler.store is not None
    real_claim = scheduler.store.claim_slots
    real_send = scheduler.publisher.send
    real_mark = scheduler.store.mark_dispatched

    def claim_slots(claims: Any, **kwargs: Any) -> Any:
        events.append(("claim", len(claims)))
        events.append(("mark in claim", len(kwargs.get("dispatched", ()))))
        return real_claim(claims, **kwargs)

    def send(runs: Any) -> Any:
        events.append(("publish", len(runs)))
        return real_send(runs)

    def mark_dispatched(task_ids: Any, at: Any) -> None:
        events.append(("mark", len(task_ids)))
        real_mark(task_ids, at)

    scheduler.store.claim_slots = claim_slots  # type: ignore[method-assign]
    scheduler.store.mark_dispatched = mark_dispatched  # type: ignore[method-assign]
    scheduler.publisher.send = send  # type: ignore[method-assign]
    try:
        yield scheduler, queue, events
    finally:
        scheduler.close()
        with Connection(broker_url) as connection:
            connection.default_channel.queue_delete(queue)


def test_a_burst_is_dispatched_in_chunks_each_published_before_the_next_claim(
    bursting_beat: tuple[DatabaseScheduler, str, list[tuple[str, int]]],
    broker_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler, queue, events = bursting_beat
    with caplog.at_level(logging.INFO):
        scheduler.tick()
    claims = [n for kind, n in events if kind == "claim"]
    # A small first chunk (the first message leaves early), doubling up to full chunks.
    expected, left, chunk = [], BURST, FIRST_CHUNK
    while left:
        expected.append(min(chunk, left))
        left -= expected[-1]
        chunk = min(2 * chunk, DISPATCH_CHUNK)
    assert claims == expected
    assert max(claims) == DISPATCH_CHUNK
    # claim, publish, claim, publish, ...: the first message left after one chunk's claim.
    sends = [kind for kind, _ in events if kind in ("claim", "publish")]
    assert sends[:4] == ["claim", "publish", "claim", "publish"]
    assert sum(n for kind, n in events if kind == "publish") == BURST
    dispatched = [r.getMessage() for r in caplog.records if "dispatched" in r.getMessage()]
    assert len(dispatched) == 1, "one summary line per burst, not one per chunk"
    assert f"dispatched {BURST} runs" in dispatched[0]
    deadline = time.monotonic() + 10
    with Connection(broker_url) as connection:
        while queue_status(connection, queue).messages < BURST:
            assert time.monotonic() < deadline, "the burst did not reach the queue"
            time.sleep(0.05)


def test_confirmed_chunks_are_marked_in_the_next_claims_transaction(
    bursting_beat: tuple[DatabaseScheduler, str, list[tuple[str, int]]],
) -> None:
    """Pipelined: chunk k is sent before chunk k-1's confirms are awaited, and the runs the
    broker confirmed ride along with a later claim; one mark transaction closes the burst."""
    scheduler, _, events = bursting_beat
    scheduler.tick()
    assert scheduler.store is not None
    along = sum(n for kind, n in events if kind == "mark in claim")
    alone = [n for kind, n in events if kind == "mark"]
    assert along > 0
    assert len(alone) == 1, "the marks of all but the last chunks go with the next claim"
    assert along + sum(alone) == BURST
    pending = scheduler.store.pending_runs(limit=BURST)
    assert pending == [], "every confirmed run is marked dispatched at the end of the burst"
