"""Broker I/O that is not a task publish: declaring the topology and reading queue depths.

Declaring is idempotent in RabbitMQ as long as the arguments match; when they do not, the broker
answers 406 deep inside a traceback and closes the channel. We turn that into a configuration
error that names the queue and quotes the broker's own comparison of the two values.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection, Queue

from scheduling.config.compiler import (
    compile_queues,
    dead_letter_ledger_queue,
    dead_letter_queue,
    dead_letter_type,
)
from scheduling.config.settings import Settings
from scheduling.errors import ConfigError


@dataclass(frozen=True)
class QueueStatus:
    name: str
    exists: bool
    messages: int
    consumers: int


def topology(settings: Settings) -> list[Queue]:
    """Every queue Periodic owns: one per `[queues.<name>]`, then the dead-letter queues."""
    dead = dead_letter_type(settings)
    return [*compile_queues(settings), dead_letter_queue(dead), dead_letter_ledger_queue(dead)]


def declare_topology(connection: Connection, settings: Settings) -> list[str]:
    """Declare exchanges and queues (durable); return the queue names declared."""
    declared: list[str] = []
    for queue in topology(settings):
        channel = connection.channel()
        try:
            queue.bind(channel).declare()
        except PreconditionFailed as error:
            raise ConfigError(
                "broker",
                [
                    f"queues.{queue.name}: the broker already has queue {queue.name!r} declared "
                    f"with other arguments than settings ask for ({error.reply_text}); "
                    + migration_hint(str(queue.name), settings)
                ],
            ) from None
        finally:
            _close_quietly(channel)
        declared.append(str(queue.name))
    return declared


def migration_hint(name: str, settings: Settings) -> str:
    """How to get from the queue the broker has to the one settings ask for (README: "Changing a
    queue's type or arguments"): RabbitMQ changes neither type nor arguments in place."""
    drain = (
        f"stop beat, let workers empty it, delete it (rabbitmqctl delete_queue {name} "
        "--if-empty) and start again: it is declared anew"
    )
    if name not in settings.queues:
        return (
            "this dead-letter queue follows the task queues' type; to migrate, stop beat and "
            "workers, move or inspect what it holds, delete it (rabbitmqctl delete_queue "
            f"{name}) and start again: it is declared anew"
        )
    return (
        f"to migrate, either give the queue a new name in settings (and delete {name!r} once a "
        f"worker has drained it), or {drain}"
    )


def declarer(settings: Settings) -> Callable[[Connection], list[str]]:
    """`declare_topology` bound to `settings`, for a publisher to run on every new connection."""
    return functools.partial(declare_topology, settings=settings)


def queue_status(connection: Connection, name: str) -> QueueStatus:
    """Depth and consumer count by a passive declare: it never creates a queue."""
    channel: Any = connection.channel()
    try:
        result = channel.queue_declare(queue=name, passive=True)
    except NotFound:
        return QueueStatus(name, exists=False, messages=0, consumers=0)
    finally:
        _close_quietly(channel)
    return QueueStatus(
        name, exists=True, messages=result.message_count, consumers=result.consumer_count
    )


def _close_quietly(channel: object) -> None:
    close = getattr(channel, "close", None)
    if close is None:
        return
    with contextlib.suppress(Exception):  # a channel the broker closed is closed
        close()
