"""The schedulers under test, each set up the way its users would, with N entries.

Periodic (on SQLite and on PostgreSQL), stock `PersistentScheduler`, RedBeat,
sqlalchemy-celery-beat (on SQLite) and django-celery-beat (on PostgreSQL, see
`benchmarks.django_beat`). Each PostgreSQL run gets a database of its own
(``periodic_bench_<tag>``, ``djcb_bench_<tag>``) on the server named by
``PERIODIC_BENCH_POSTGRES_URL`` (an admin URL; default the local server), dropped afterwards.

Every contender gets its own Celery app on the benchmark broker, one durable queue, and N entries
of the heartbeat task, either all due now (W1 burst) or none due for hours (W2 idle). Entries
are written with each contender's bulk path where it has one, so setup time is not measured.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.schedules import schedule as every
from kombu import Exchange, Queue
from pydantic import SecretStr
from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis
from redis import Redis
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy_celery_beat.models import IntervalSchedule, Period, PeriodicTask
from sqlalchemy_celery_beat.session import SessionManager

from benchmarks import django_beat
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

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"
HOUR = timedelta(hours=1)
REDIS_URL = "redis://127.0.0.1:6379/15"
POSTGRES_ENV = "PERIODIC_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Env:
    broker_url: str
    workdir: Path
    queue: str


@dataclass(frozen=True)
class Contender:
    name: str
    scheduler: str
    populate: Callable[[Env, int, bool, str], None]
    """Write N entries (due now or not) for run `tag`, before the measured process starts."""
    app: Callable[[Env, int, bool, str], Celery]
    """The Celery app of run `tag` (in the measured process)."""
    cleanup: Callable[[str], None] = lambda tag: None
    """Remove what run `tag` left in shared services (Redis keys, a PostgreSQL database)."""


def floor_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


# --- Periodic ------------------------------------------------------------------------


def postgres_admin_url() -> str:
    return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL


def postgres_url(tag: str) -> str:
    url = make_url(postgres_admin_url()).set(database=f"periodic_bench_{tag}")
    return url.render_as_string(hide_password=False)


def _postgres_admin(statement: str) -> None:
    engine = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def postgres_create(tag: str) -> None:
    _postgres_admin(f'CREATE DATABASE "periodic_bench_{tag}"')


def postgres_drop(tag: str) -> None:
    _postgres_admin(f'DROP DATABASE IF EXISTS "periodic_bench_{tag}" WITH (FORCE)')


def periodic_url(env: Env, tag: str, store: str = "sqlite") -> str:
    if store == "postgresql":
        return postgres_url(tag)
    return f"sqlite:///{env.workdir / f'periodic-{tag}.db'}"


def periodic_populate(env: Env, n: int, due: bool, tag: str, store: str = "sqlite") -> None:
    now = datetime.now(UTC)
    definition = ScheduleEntry(task=HEARTBEAT, every=HOUR, catchup="latest", queue=env.queue)
    first = floor_hour(now) if due else floor_hour(now) + 24 * HOUR
    if store == "postgresql":
        postgres_create(tag)
    with Store.open(periodic_url(env, tag, store)) as opened:
        opened.bulk_create_entries([(f"bench-{i:06d}", definition, first) for i in range(n)])


def periodic_distinct_populate(env: Env, n: int, due: bool, tag: str) -> None:
    """Every entry with a definition of its own (no shared parse): Periodic's worst start-up."""
    now = datetime.now(UTC)
    first = floor_hour(now) if due else floor_hour(now) + 24 * HOUR
    rows = [
        (
            f"bench-{i:06d}",
            ScheduleEntry(task=HEARTBEAT, every=HOUR, queue=env.queue, description=f"entry {i}"),
            first,
        )
        for i in range(n)
    ]
    with Store.open(periodic_url(env, tag)) as store:
        store.bulk_create_entries(rows)


def periodic_app(env: Env, n: int, due: bool, tag: str, store: str = "sqlite") -> Celery:
    settings = Settings(
        app=AppSettings(database_url=SecretStr(periodic_url(env, tag, store))),
        broker=BrokerSettings(url=SecretStr(env.broker_url)),
        queues={env.queue: QueueSettings(default=True)},
        beat=BeatSettings(scheduler="database"),
        schedule={},
    )
    return create_celery(settings)


# --- stock Celery apps (PersistentScheduler, RedBeat) --------------------------------


def stock_app(env: Env, tag: str) -> Celery:
    app = Celery(f"bench-{tag}", broker=env.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=env.queue,
        task_queues=[Queue(env.queue, Exchange(env.queue, "direct"), env.queue, durable=True)],
        beat_schedule_filename=str(env.workdir / f"celerybeat-{tag}"),
        task_ignore_result=True,
    )
    return app


def persistent_populate(env: Env, n: int, due: bool, tag: str) -> None:
    """Stock Beat reads its schedule from configuration: nothing to write beforehand."""


def persistent_app(env: Env, n: int, due: bool, tag: str) -> Celery:
    app = stock_app(env, tag)
    last_run = datetime.now(UTC) - (2 * HOUR if due else timedelta(0))
    app.conf.beat_schedule = {
        f"bench-{i:06d}": {
            "task": HEARTBEAT,
            "schedule": every(HOUR),
            "options": {"queue": env.queue},
            "last_run_at": last_run,
        }
        for i in range(n)
    }
    return app


def redbeat_prefix(tag: str) -> str:
    return f"periodic-bench-{tag}:"


def redbeat_app(env: Env, n: int, due: bool, tag: str) -> Celery:
    app = stock_app(env, tag)
    app.conf.update(redbeat_redis_url=REDIS_URL, redbeat_key_prefix=redbeat_prefix(tag))
    return app


def redbeat_populate(env: Env, n: int, due: bool, tag: str) -> None:
    """RedBeat's own `save()`, batched in pipelines of 1000 (one round trip each)."""
    app = redbeat_app(env, n, due, tag)
    ensure_conf(app)
    client = get_redis(app)
    last_run = datetime.now(UTC) - (2 * HOUR if due else timedelta(0))
    schedule_key = app.redbeat_conf.schedule_key
    for start in range(0, n, 1000):
        with client.pipeline() as pipe:
            for i in range(start, min(n, start + 1000)):
                entry = RedBeatSchedulerEntry(
                    f"bench-{i:06d}", HEARTBEAT, every(HOUR), options={"queue": env.queue}, app=app
                )
                entry.last_run_at = last_run
                definition: dict[str, Any] = {
                    "name": entry.name,
                    "task": entry.task,
                    "args": entry.args,
                    "kwargs": entry.kwargs,
                    "options": entry.options,
                    "schedule": entry.schedule,
                    "enabled": True,
                }
                meta = {"last_run_at": last_run}
                pipe.hset(entry.key, "definition", json.dumps(definition, cls=RedBeatJSONEncoder))
                pipe.hset(entry.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
                pipe.zadd(schedule_key, {entry.key: entry.score})
            pipe.execute()


def redbeat_cleanup(tag: str) -> None:
    client = Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=redbeat_prefix(tag) + "*", count=5000))
    for start in range(0, len(keys), 5000):
        client.delete(*keys[start : start + 5000])
    client.close()


# --- sqlalchemy-celery-beat ------------------------------------------------------------


def sqlalchemy_beat_url(env: Env, tag: str) -> str:
    return f"sqlite:///{env.workdir / f'sqlalchemy-beat-{tag}.db'}"


def sqlalchemy_beat_app(env: Env, n: int, due: bool, tag: str) -> Celery:
    app = stock_app(env, tag)
    app.conf.update(beat_dburi=sqlalchemy_beat_url(env, tag), result_expires=None)
    return app


def sqlalchemy_beat_populate(env: Env, n: int, due: bool, tag: str) -> None:
    """Its own models: one interval row, then N task rows in one executemany (no ORM events)."""
    engine, session_factory = SessionManager().create_session(sqlalchemy_beat_url(env, tag))
    SessionManager().prepare_models(engine)
    last_run = datetime.now(UTC) - (2 * HOUR if due else timedelta(0))
    with session_factory() as session:
        interval = IntervalSchedule(every=1, period=Period.HOURS)
        session.add(interval)
        session.commit()
        rows = [
            {
                "name": f"bench-{i:06d}",
                "task": HEARTBEAT,
                "args": "[]",
                "kwargs": "{}",
                "queue": env.queue,
                "headers": "{}",
                "one_off": False,
                "enabled": True,
                "last_run_at": last_run,
                "total_run_count": 0,
                "date_changed": last_run,
                "description": "",
                "discriminator": interval.discriminator,
                "schedule_id": interval.id,
            }
            for i in range(n)
        ]
        for start in range(0, n, 5000):
            session.execute(insert(PeriodicTask), rows[start : start + 5000])
        session.commit()
    engine.dispose()


# --- django-celery-beat (PostgreSQL) ------------------------------------------------------


def django_beat_populate(env: Env, n: int, due: bool, tag: str) -> None:
    _postgres_admin(f'CREATE DATABASE "{django_beat.database_name(tag)}"')
    django_beat.populate_in_child(
        postgres_admin_url(), django_beat.database_name(tag), n, due, env.queue
    )


def django_beat_app(env: Env, n: int, due: bool, tag: str) -> Celery:
    django_beat.configure(postgres_admin_url(), django_beat.database_name(tag))
    app = stock_app(env, tag)
    app.conf.update(result_expires=None, timezone="UTC")
    return app


def django_beat_cleanup(tag: str) -> None:
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()
    _postgres_admin(f'DROP DATABASE IF EXISTS "{django_beat.database_name(tag)}" WITH (FORCE)')


CONTENDERS = {
    "periodic": Contender(
        "Periodic DatabaseScheduler",
        "scheduling.beat.scheduler:DatabaseScheduler",
        periodic_populate,
        periodic_app,
    ),
    "periodic-pg": Contender(
        "Periodic DatabaseScheduler (PostgreSQL)",
        "scheduling.beat.scheduler:DatabaseScheduler",
        functools.partial(periodic_populate, store="postgresql"),
        functools.partial(periodic_app, store="postgresql"),
        postgres_drop,
    ),
    "periodic-distinct": Contender(
        "Periodic, every definition distinct",
        "scheduling.beat.scheduler:DatabaseScheduler",
        periodic_distinct_populate,
        periodic_app,
    ),
    "persistent": Contender(
        "celery PersistentScheduler",
        "celery.beat:PersistentScheduler",
        persistent_populate,
        persistent_app,
    ),
    "redbeat": Contender(
        "RedBeat",
        "redbeat.schedulers:RedBeatScheduler",
        redbeat_populate,
        redbeat_app,
        redbeat_cleanup,
    ),
    "sqlalchemy-beat": Contender(
        "sqlalchemy-celery-beat (SQLite)",
        "sqlalchemy_celery_beat.schedulers:DatabaseScheduler",
        sqlalchemy_beat_populate,
        sqlalchemy_beat_app,
    ),
    "django-beat": Contender(
        "django-celery-beat (PostgreSQL)",
        "django_celery_beat.schedulers:DatabaseScheduler",
        django_beat_populate,
        django_beat_app,
        django_beat_cleanup,
    ),
}


def new_tag() -> str:
    return uuid.uuid4().hex[:8]
