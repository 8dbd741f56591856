"""`[queues.<name>].type`: what a quorum queue is declared with, and what it refuses at load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from celery.worker.consumer import Consumer
from kombu.utils.imports import symbol_by_name

from scheduling.broker.topology import migration_hint, topology
from scheduling.celery.consumer import DELAYED_DELIVERY_STEP
from scheduling.config.compiler import compile_celery_config, queue_arguments
from scheduling.config.loading import load_settings
from scheduling.errors import ConfigError

Write = Callable[..., Path]

QUORUM = """
[queues.high]
type = "quorum"
priority = 9
message_ttl = "10m"
[queues.default]
default = true
[worker]
max_deliveries = 4
"""


def test_classic_is_the_default_and_keeps_its_arguments(write_settings: Write) -> None:
    settings = load_settings(write_settings(""))
    assert {queue.type for queue in settings.queues.values()} == {"classic"}
    assert queue_arguments("high", settings) == {"x-dead-letter-exchange": "periodic.dlx"}
    dead = [q for q in topology(settings) if q.name.startswith("periodic.dead")]
    assert [q.queue_arguments for q in dead] == [None, None]


def test_a_quorum_queue_limits_deliveries_and_dead_letters_at_least_once(
    write_settings: Write,
) -> None:
    settings = load_settings(write_settings(QUORUM, with_queues=False))
    assert queue_arguments("high", settings) == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "periodic.dlx",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        # The broker counts returns: 3 returns allowed = 4 deliveries = worker.max_deliveries.
        "x-delivery-limit": 3,
        "x-message-ttl": 600_000,
    }
    assert "x-queue-type" not in queue_arguments("default", settings)
    queues = {str(q.name): q for q in topology(settings)}
    for dead in ("periodic.dead", "periodic.dead.ledger"):
        assert queues[dead].queue_arguments == {"x-queue-type": "quorum"}
    celery_queues = {q.name: q for q in compile_celery_config(settings)["task_queues"]}
    assert celery_queues["high"].queue_arguments["x-queue-type"] == "quorum"


def test_max_priority_on_a_quorum_queue_is_a_load_error_naming_the_field(
    write_settings: Write,
) -> None:
    path = write_settings(
        '[queues.high]\ntype = "quorum"\nmax_priority = 10\n[queues.default]\ndefault = true\n',
        with_queues=False,
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "queues.high.max_priority" in message
    assert "quorum queue cannot honour message priorities" in message


def test_an_unknown_queue_type_names_the_field(write_settings: Write) -> None:
    path = write_settings('[queues.high]\ntype = "stream"\n', with_queues=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "queues.high.type" in str(caught.value)


def test_the_migration_hint_offers_a_new_name_or_drain_and_redeclare(
    write_settings: Write,
) -> None:
    settings = load_settings(write_settings(QUORUM, with_queues=False))
    hint = migration_hint("high", settings)
    assert "new name" in hint
    assert "rabbitmqctl delete_queue high --if-empty" in hint
    dead_hint = migration_hint("periodic.dead", settings)
    assert "new name" not in dead_hint
    assert "rabbitmqctl delete_queue periodic.dead)" in dead_hint


def test_workers_leave_out_celerys_delayed_delivery_step(write_settings: Write) -> None:
    settings = load_settings(write_settings(QUORUM, with_queues=False))
    consumer = symbol_by_name(compile_celery_config(settings)["worker_consumer"])
    assert DELAYED_DELIVERY_STEP in Consumer.Blueprint.default_steps
    assert DELAYED_DELIVERY_STEP not in consumer.Blueprint.default_steps
    kept = [step for step in Consumer.Blueprint.default_steps if step != DELAYED_DELIVERY_STEP]
    assert consumer.Blueprint.default_steps == kept
