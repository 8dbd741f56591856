"""ConfirmedPublisher against a real RabbitMQ: pipelined confirms, real worker, unroutable."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.events.state import State
from kombu import Connection, Exchange, Queue

from scheduling.broker.publisher import (
    EVENT_EXCHANGE,
    BatchPublishError,
    ConfirmedPublisher,
    OutgoingRun,
)
from scheduling.broker.topology import declare_topology, queue_status
from scheduling.config.loading import load_settings
from scheduling.config.settings import Settings
from tests.support.ledger import claim_like_beat
from tests.support.processes import celery_worker, clean_env

pytestmark = pytest.mark.integration

SETTINGS = """
[app]
database_url = "sqlite:///{database}"
[broker]
url = "{broker_url}"
[queues.{queue}]
default = true
"""


@pytest.fixture
def queue() -> str:
    return f"pub-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings_file(tmp_path: Path, broker_url: str, queue: str) -> Path:
    path = tmp_path / "settings.toml"
    database = tmp_path / "periodic.db"
    path.write_text(SETTINGS.format(broker_url=broker_url, queue=queue, database=database))
    return path


@pytest.fixture
def settings(settings_file: Path, broker_url: str) -> Iterator[Settings]:
    loaded = load_settings(settings_file)
    with Connection(broker_url) as connection:
        declare_topology(connection, loaded)
    yield loaded
    with Connection(broker_url) as connection:
        for name in loaded.queues:
            connection.default_channel.queue_delete(name)


@pytest.fixture
def publisher(settings: Settings) -> Iterator[ConfirmedPublisher]:
    publisher = ConfirmedPublisher.from_settings(settings.broker)
    yield publisher
    publisher.close()


def outgoing(
    queue: str, count: int, task: str = "scheduling.tasks.heartbeat.heartbeat"
) -> list[OutgoingRun]:
    slot = datetime.now(UTC).replace(microsecond=0)
    return [
        OutgoingRun(
            task_id=str(uuid.uuid4()),
            task=task,
            args=[],
            kwargs={},
            queue=queue,
            entry=f"entry-{index}",
            scheduled_for=slot,
            expires=slot + timedelta(hours=1),
        )
        for index in range(count)
    ]


def drain_ids(broker_url: str, queue: str, expected: int) -> list[str]:
    ids: list[str] = []
    with Connection(broker_url) as connection:
        channel = connection.default_channel
        while len(ids) < expected:
            message = channel.basic_get(queue, no_ack=True)
            if message is None:
                break
            ids.append(message.headers["id"])
    return ids


def test_every_message_of_a_batch_is_confirmed_and_queued(
    publisher: ConfirmedPublisher, broker_url: str, queue: str
) -> None:
    runs = outgoing(queue, 3000)
    publisher.publish(runs)
    with Connection(broker_url) as connection:
        assert queue_status(connection, queue).messages == 3000
    assert sorted(drain_ids(broker_url, queue, 3000)) == sorted(r.task_id for r in runs)


def test_an_unroutable_message_fails_and_the_others_are_confirmed(
    publisher: ConfirmedPublisher, queue: str
) -> None:
    good = outgoing(queue, 5)
    bad = outgoing("no-such-queue", 1)
    with pytest.raises(BatchPublishError) as failure:
        publisher.publish([*good, *bad])
    assert failure.value.confirmed == {r.task_id for r in good}
    assert "unroutable" in str(failure.value)
    publisher.publish(outgoing(queue, 1))


def test_a_stock_celery_worker_executes_the_message(
    publisher: ConfirmedPublisher, settings_file: Path, queue: str, tmp_path: Path
) -> None:
    (run,) = outgoing(queue, 1)
    claim_like_beat(load_settings(settings_file).app.database_url.get_secret_value(), [run])
    worker = celery_worker(queue, tmp_path, clean_env({"PERIODIC_SETTINGS": str(settings_file)}))
    try:
        worker.wait_for(r"ready\.", timeout=60)
        publisher.publish([run])
        worker.wait_for(
            rf"Task scheduling\.tasks\.heartbeat\.heartbeat\[{run.task_id}\] succeeded", 30
        )
    finally:
        worker.stop()


def test_a_dead_broker_raises_publish_error() -> None:
    publisher = ConfirmedPublisher("amqp://guest:guest@127.0.0.1:1//", connect_timeout=1)
    with pytest.raises(BatchPublishError):
        publisher.publish(outgoing("anything", 1))
    publisher.close()


def test_sent_events_make_queued_runs_visible_to_flower(
    settings: Settings, broker_url: str, queue: str
) -> None:
    """Flower's view of the cluster is celery.events.State fed from the `celeryev` exchange."""
    runs = [replace(run, args=["secret-arg"]) for run in outgoing(queue, 3)]
    publisher = ConfirmedPublisher.from_settings(settings.broker, sent_events=True)
    state = State()
    with Connection(broker_url) as connection:
        channel = connection.channel()
        watch = Queue(
            f"watch-{queue}",
            Exchange(EVENT_EXCHANGE, type="topic"),
            routing_key="task.#",
            exclusive=True,
        )
        watch(channel).declare()
        try:
            publisher.publish(runs)
            deadline = time.monotonic() + 10
            events: list[dict[str, Any]] = []
            while len(events) < len(runs):
                assert time.monotonic() < deadline, events
                message = channel.basic_get(watch.name, no_ack=True)
                if message is not None:
                    events.append(json.loads(message.body))
        finally:
            publisher.close()
            channel.close()
        receiver = Celery(broker=broker_url).events.Receiver(connection)
        for body in events:
            state.event(receiver.event_from_message(body)[1])
    for run in runs:
        task = state.tasks[run.task_id]
        assert task.sent is not None
        assert task.name == run.task
        assert task.routing_key == queue
        assert task.args == "(…)"
    assert "secret-arg" not in json.dumps(events)


def test_without_sent_events_only_the_task_is_published(
    publisher: ConfirmedPublisher, broker_url: str, queue: str
) -> None:
    with Connection(broker_url) as connection:
        channel = connection.channel()
        watch = Queue(
            f"watch-{queue}",
            Exchange(EVENT_EXCHANGE, type="topic"),
            routing_key="task.#",
            exclusive=True,
        )
        watch(channel).declare()
        publisher.publish(outgoing(queue, 2))
        assert channel.basic_get(watch.name, no_ack=True) is None
        channel.close()
