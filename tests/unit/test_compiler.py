"""Settings → Celery configuration, with no broker: queues, routes, schedule, safety switches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scheduling.config.compiler import (
    DEAD_LETTER_EXCHANGE,
    compile_celery_config,
    compile_entries,
)
from scheduling.config.loading import load_settings
from scheduling.config.settings import Settings
from scheduling.timing.solar import SolarTimetable
from scheduling.timing.timetables import CronTimetable, IntervalTimetable, OneOffTimetable

BODY = """
[routes]
"reports.*" = "low"
"reports.urgent" = "high"

[schedule.ping]
task = "heartbeat"
every = "1s"
queue = "high"

[schedule.report]
task = "reports.send"
cron = "0 8 * * mon-fri"
timezone = "America/New_York"

[schedule.urgent]
task = "reports.urgent"
every = "4h"
expires = "never"

[schedule.default-routed]
task = "other.task"
at = 2030-01-01T00:00:00Z

[schedule.paused]
task = "heartbeat"
every = "1m"
enabled = false
"""


@pytest.fixture
def settings(write_settings: Callable[[str], Path]) -> Settings:
    return load_settings(write_settings(BODY))


def test_queues_are_durable_on_one_direct_exchange(settings: Settings) -> None:
    config = compile_celery_config(settings)
    queues = {q.name: q for q in config["task_queues"]}
    assert list(queues) == ["high", "default", "low"]
    for name, queue in queues.items():
        assert queue.durable
        assert queue.exchange.type == "direct"
        assert queue.routing_key == name
        assert queue.queue_arguments["x-dead-letter-exchange"] == DEAD_LETTER_EXCHANGE
    assert config["task_default_queue"] == "default"


def test_safety_switches(settings: Settings) -> None:
    config = compile_celery_config(settings)
    assert config["task_create_missing_queues"] is False
    assert config["broker_transport_options"]["confirm_publish"] is True
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == "json"
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1


def test_task_events_are_on_for_flower(settings: Settings) -> None:
    config = compile_celery_config(settings)
    assert config["worker_send_task_events"] is True
    assert config["task_send_sent_event"] is True


def test_routes_keep_file_order_and_entry_queue_wins(settings: Settings) -> None:
    config = compile_celery_config(settings)
    assert config["task_routes"] == [
        {"reports.*": {"queue": "low"}},
        {"reports.urgent": {"queue": "high"}},
    ]
    queues = {c.name: c.queue for c in compile_entries(settings)}
    assert queues == {
        "ping": "high",
        "report": "low",
        "urgent": "low",  # the first matching glob wins, as in Celery
        "default-routed": "default",
        "paused": "default",
    }


def test_beat_schedule_uses_periodic_timetables(settings: Settings) -> None:
    schedule = compile_celery_config(settings)["beat_schedule"]
    assert set(schedule) == {"ping", "report", "urgent", "default-routed"}, "disabled left out"
    assert isinstance(schedule["ping"]["schedule"], IntervalTimetable)
    assert isinstance(schedule["report"]["schedule"], CronTimetable)
    assert schedule["report"]["schedule"].zone.key == "America/New_York"
    assert isinstance(schedule["default-routed"]["schedule"], OneOffTimetable)
    assert schedule["ping"]["options"]["queue"] == "high"


def test_expires_auto_is_the_period_capped_at_an_hour(settings: Settings) -> None:
    schedule = compile_celery_config(settings)["beat_schedule"]
    assert schedule["ping"]["options"]["expires"] == 1.0
    assert schedule["report"]["options"]["expires"] == 3600.0
    assert "expires" not in schedule["urgent"]["options"]


def test_priority_queue_arguments(write_settings: Callable[..., Path]) -> None:
    path = write_settings(
        "[queues.high]\npriority = 9\nmax_priority = 10\nmessage_ttl = '10m'\n"
        "[queues.low]\npriority = 1\ndefault = true\n"
        "[schedule.p]\ntask = 't'\nevery = '1m'\nqueue = 'high'\n",
        with_queues=False,
    )
    config = compile_celery_config(load_settings(path))
    high = next(q for q in config["task_queues"] if q.name == "high")
    assert high.queue_arguments["x-max-priority"] == 10
    assert high.queue_arguments["x-message-ttl"] == 600_000
    assert config["beat_schedule"]["p"]["options"]["priority"] == 9


def test_scheduler_mode_selects_the_beat_scheduler(write_settings: Callable[[str], Path]) -> None:
    static = compile_celery_config(load_settings(write_settings("[beat]\nscheduler = 'static'\n")))
    assert static["beat_scheduler"] == "scheduling.beat.static:StaticScheduler"
    database = compile_celery_config(
        load_settings(write_settings("[beat]\nscheduler = 'database'\n"))
    )
    assert database["beat_scheduler"] == "scheduling.beat.scheduler:DatabaseScheduler"


def test_solar_entries_compile_to_solar_timetables(write_settings: Callable[[str], Path]) -> None:
    settings = load_settings(
        write_settings(
            '[schedule.lights]\ntask = "heartbeat"\nsolar = "dusk_civil"\n'
            "latitude = 59.33\nlongitude = 18.07\ntimezone = 'Europe/Stockholm'\n"
        )
    )
    schedule = compile_celery_config(settings)["beat_schedule"]["lights"]
    assert schedule["schedule"] == SolarTimetable(
        "dusk_civil", 59.33, 18.07, ZoneInfo("Europe/Stockholm")
    )
    assert schedule["options"]["expires"] == 3600.0
