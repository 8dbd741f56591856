"""Settings in, Celery configuration out: a pure translation with no I/O.

Everything Beat, the workers and the broker need is derived here from one `Settings` value, so
the same file always yields the same queues, routes and schedule, and the translation is unit
tested without a broker. Queues are durable, on one direct exchange, and dead-letter into
``periodic.dead`` so that expired and rejected messages are kept for inspection.

A ``quorum`` queue (``[queues.<name>].type``) is replicated by Raft across a RabbitMQ cluster and
counts deliveries itself: ``x-delivery-limit`` lets a message be delivered
``worker.max_deliveries`` times (the limit counts *returns*, so it is one less), then dead-letters
it ``at-least-once`` (the source queue keeps the message until the dead-letter queue has taken
it; RabbitMQ needs ``x-overflow = reject-publish`` for that). When any queue is a quorum queue,
the two dead-letter queues are quorum queues too: a dead letter must survive the node it sits on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from kombu import Exchange, Queue

from scheduling.config.loading import route_for
from scheduling.config.settings import AUTO_EXPIRES_CAP, QueueType, ScheduleEntry, Settings
from scheduling.timing.cron import CronExpression
from scheduling.timing.solar import SolarTimetable
from scheduling.timing.timetables import (
    UNIX_EPOCH,
    CronTimetable,
    IntervalTimetable,
    OneOffTimetable,
    Timetable,
)

EXCHANGE_NAME = "periodic"
DEAD_LETTER_EXCHANGE = "periodic.dlx"
DEAD_LETTER_QUEUE = "periodic.dead"
DEAD_LETTER_LEDGER_QUEUE = "periodic.dead.ledger"
"""A second copy of every dead letter (fanout), consumed by workers to update the run ledger,
so ``periodic.dead`` itself keeps its messages for inspection."""
SCHEDULERS = {
    "static": "scheduling.beat.static:StaticScheduler",
    "database": "scheduling.beat.scheduler:DatabaseScheduler",
}
# A fixed instant to measure a cron entry's period from, so compiling stays pure.
_PERIOD_REFERENCE = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class CompiledEntry:
    """An entry resolved against the rest of the settings: its timetable and its queue."""

    name: str
    entry: ScheduleEntry
    timetable: Timetable
    queue: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.entry.task


def entry_timetable(entry: ScheduleEntry, settings: Settings) -> Timetable:
    zone = settings.entry_zone(entry)
    if entry.every is not None:
        anchor = entry.start or UNIX_EPOCH
        return IntervalTimetable(entry.every, zone, anchor=anchor, start=entry.start, end=entry.end)
    if entry.cron is not None:
        return CronTimetable(
            CronExpression.parse(entry.cron), zone, start=entry.start, end=entry.end
        )
    if entry.solar is not None:
        assert entry.latitude is not None
        assert entry.longitude is not None
        return SolarTimetable(
            entry.solar, entry.latitude, entry.longitude, zone, start=entry.start, end=entry.end
        )
    assert entry.at is not None
    return OneOffTimetable(entry.at, zone)


def resolve_queue(entry: ScheduleEntry, settings: Settings) -> str:
    """The entry's own queue, else the first matching `[routes]` glob, else the default queue."""
    return entry.queue or route_for(entry.task, settings.routes) or settings.default_queue


def typical_period(timetable: Timetable) -> timedelta | None:
    """The shortest gap between the next few fires, or None for a one-off."""
    times = timetable.fire_times(_PERIOD_REFERENCE, 4)
    gaps = [later - earlier for earlier, later in pairwise(times)]
    return min(gaps) if gaps else None


def expiry(entry: ScheduleEntry, timetable: Timetable) -> timedelta | None:
    """How long a message stays worth running: ``auto`` is min(period, 1h); ``never`` is None."""
    if entry.expires == "never":
        return None
    if entry.expires == "auto":
        period = typical_period(timetable)
        return min(period, AUTO_EXPIRES_CAP) if period else AUTO_EXPIRES_CAP
    assert isinstance(entry.expires, timedelta)
    return entry.expires


def message_priority(queue: str, settings: Settings) -> int | None:
    declared = settings.queues[queue]
    return declared.priority if declared.max_priority is not None else None


def compile_entry(name: str, entry: ScheduleEntry, settings: Settings) -> CompiledEntry:
    timetable = entry_timetable(entry, settings)
    queue = resolve_queue(entry, settings)
    options: dict[str, Any] = {"queue": queue}
    expires = expiry(entry, timetable)
    if expires is not None:
        options["expires"] = expires.total_seconds()
    priority = message_priority(queue, settings)
    if priority is not None:
        options["priority"] = priority
    return CompiledEntry(name, entry, timetable, queue, options)


def compile_entries(settings: Settings) -> list[CompiledEntry]:
    return [compile_entry(name, entry, settings) for name, entry in settings.schedule.items()]


def task_exchange() -> Exchange:
    return Exchange(EXCHANGE_NAME, type="direct", durable=True)


def dead_letter_type(settings: Settings) -> QueueType:
    """Quorum as soon as one task queue is: its dead letters must be as safe as its messages."""
    return "quorum" if any(q.type == "quorum" for q in settings.queues.values()) else "classic"


def _dead_letter_arguments(queue_type: QueueType) -> dict[str, Any] | None:
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else None


def dead_letter_queue(queue_type: QueueType = "classic") -> Queue:
    exchange = Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)
    return Queue(
        DEAD_LETTER_QUEUE,
        exchange,
        routing_key=DEAD_LETTER_QUEUE,
        durable=True,
        queue_arguments=_dead_letter_arguments(queue_type),
    )


def dead_letter_ledger_queue(queue_type: QueueType = "classic") -> Queue:
    exchange = Exchange(DEAD_LETTER_EXCHANGE, type="fanout", durable=True)
    return Queue(
        DEAD_LETTER_LEDGER_QUEUE,
        exchange,
        routing_key=DEAD_LETTER_LEDGER_QUEUE,
        durable=True,
        queue_arguments=_dead_letter_arguments(queue_type),
    )


def queue_arguments(name: str, settings: Settings) -> dict[str, Any]:
    declared = settings.queues[name]
    arguments: dict[str, Any] = {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
    if declared.type == "quorum":
        arguments.update(
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": settings.worker.max_deliveries - 1,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        )
    if declared.max_priority is not None:
        arguments["x-max-priority"] = declared.max_priority
    if declared.message_ttl is not None:
        arguments["x-message-ttl"] = round(declared.message_ttl.total_seconds() * 1000)
    return arguments


def compile_queues(settings: Settings) -> list[Queue]:
    """One durable queue per `[queues.<name>]`, bound by its own name on the direct exchange."""
    exchange = task_exchange()
    return [
        Queue(
            name,
            exchange,
            routing_key=name,
            durable=True,
            queue_arguments=queue_arguments(name, settings),
        )
        for name in settings.queues
    ]


def compile_routes(settings: Settings) -> list[dict[str, dict[str, str]]]:
    """`[routes]` globs in file order (Celery tries them in that order)."""
    return [{glob: {"queue": queue}} for glob, queue in settings.routes.items()]


def compile_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Stock Beat's `beat_schedule`, for the static scheduler; disabled entries are left out."""
    schedule: dict[str, dict[str, Any]] = {}
    for compiled in compile_entries(settings):
        if not compiled.entry.enabled:
            continue
        schedule[compiled.name] = {
            "task": compiled.task,
            "schedule": compiled.timetable,
            "args": tuple(compiled.entry.args),
            "kwargs": dict(compiled.entry.kwargs),
            "options": dict(compiled.options),
        }
    return schedule


def compile_task_annotations(settings: Settings) -> dict[str, dict[str, float]]:
    """`[worker.time_limits."<task>"]` as Celery task annotations (set on the task classes)."""
    annotations: dict[str, dict[str, float]] = {}
    for task, limits in settings.worker.time_limits.items():
        annotation: dict[str, float] = {}
        if limits.soft is not None:
            annotation["soft_time_limit"] = limits.soft.total_seconds()
        if limits.hard is not None:
            annotation["time_limit"] = limits.hard.total_seconds()
        annotations[task] = annotation
    return annotations


def compile_celery_config(settings: Settings) -> dict[str, Any]:
    """The complete Celery configuration for web, workers and beat."""
    worker = settings.worker
    return {
        "broker_url": settings.broker.url.get_secret_value(),
        "broker_heartbeat": settings.broker.heartbeat.total_seconds(),
        "broker_connection_timeout": settings.broker.connect_timeout.total_seconds(),
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "confirm_publish": settings.broker.confirm_publish,
            "confirm_timeout": settings.broker.publish_timeout.total_seconds(),
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "enable_utc": True,
        "timezone": settings.app.timezone,
        "task_queues": compile_queues(settings),
        "task_default_queue": settings.default_queue,
        "task_default_exchange": EXCHANGE_NAME,
        "task_default_exchange_type": "direct",
        "task_default_routing_key": settings.default_queue,
        "task_create_missing_queues": False,
        "task_routes": compile_routes(settings),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_consumer": "scheduling.celery.consumer:PeriodicConsumer",
        # Flower and `celery events` work without a remote `enable_events`; beat and the web
        # process send task-sent events themselves (scheduling.broker.publisher).
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": worker.soft_time_limit.total_seconds(),
        "task_time_limit": worker.time_limit.total_seconds(),
        "task_annotations": compile_task_annotations(settings),
        "beat_schedule": compile_beat_schedule(settings),
        "beat_scheduler": SCHEDULERS[settings.beat.scheduler],
        "beat_schedule_filename": settings.beat.schedule_file,
        "beat_max_loop_interval": settings.beat.sync_interval.total_seconds(),
    }
