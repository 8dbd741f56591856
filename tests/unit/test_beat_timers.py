"""An idle leader's two periodic jobs, the change check and the sweep for unconfirmed claims,
meet in one tick: whichever falls due brings the other forward when it is close, so while a
change signal is open an idle leader ticks once per `SWEEP_INTERVAL`, not twice."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from scheduling.beat.scheduler import SWEEP_INTERVAL, DatabaseScheduler
from scheduling.celery.app import create_celery
from scheduling.config.settings import AppSettings, BrokerSettings, QueueSettings, Settings


@pytest.fixture
def scheduler() -> DatabaseScheduler:
    config = Settings(
        app=AppSettings(database_url=SecretStr("sqlite:///unused.db")),
        broker=BrokerSettings(url=SecretStr("amqp://guest:guest@127.0.0.1:1//")),
        queues={"default": QueueSettings(default=True)},
        schedule={},
    )
    return DatabaseScheduler(app=create_celery(config), lazy=True)


def listening(scheduler: DatabaseScheduler) -> None:
    scheduler._check_period = lambda: SWEEP_INTERVAL  # type: ignore[method-assign]


def test_a_due_check_brings_a_close_sweep_into_its_tick(scheduler: DatabaseScheduler) -> None:
    listening(scheduler)
    scheduler._next_check, scheduler._next_sweep = 100.0, 110.0
    scheduler._align_timers(100.0)
    assert scheduler._next_sweep == 100.0


def test_a_due_sweep_brings_a_close_check_into_its_tick(scheduler: DatabaseScheduler) -> None:
    listening(scheduler)
    scheduler._next_check, scheduler._next_sweep = 110.0, 100.0
    scheduler._align_timers(100.0)
    assert scheduler._next_check == 100.0


def test_timers_far_apart_are_left_alone(scheduler: DatabaseScheduler) -> None:
    listening(scheduler)
    scheduler._next_check, scheduler._next_sweep = 100.0, 100.0 + SWEEP_INTERVAL * 0.75
    scheduler._align_timers(100.0)
    assert scheduler._next_sweep == 100.0 + SWEEP_INTERVAL * 0.75


def test_a_polling_beat_sweeps_at_its_own_pace(scheduler: DatabaseScheduler) -> None:
    """Without a signal the check runs every poll interval: it must not drag the sweep along
    (that would sweep every tick)."""
    assert scheduler._check_period() == scheduler.poll_interval
    scheduler._next_check, scheduler._next_sweep = 100.0, 100.0 + SWEEP_INTERVAL / 4
    scheduler._align_timers(100.0)
    assert scheduler._next_sweep == 100.0 + SWEEP_INTERVAL / 4


def test_nothing_moves_while_neither_is_due(scheduler: DatabaseScheduler) -> None:
    listening(scheduler)
    scheduler._next_check, scheduler._next_sweep = 101.0, 102.0
    scheduler._align_timers(100.0)
    assert (scheduler._next_check, scheduler._next_sweep) == (101.0, 102.0)
