"""django-celery-beat as a contender: a minimal Django project around its models, on PostgreSQL.

Django reads its settings once per process, so the entries are written by a child process
(``python -m benchmarks.django_beat DATABASE N DUE QUEUE``: migrate, one interval row, N task
rows in `bulk_create` batches, then `PeriodicTasks.update_changed()` as its admin would), and
the measured process configures Django for its run's database when it builds the Celery app.
Each run gets a database of its own (``djcb_bench_<tag>``) on the PostgreSQL server of
``PERIODIC_BENCH_POSTGRES_URL``, dropped afterwards: PostgreSQL is what Django teams run it on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

__all__ = ["configure", "create_due_entry", "database_name", "populate_in_child"]

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"
HOUR = timedelta(hours=1)


def database_name(tag: str) -> str:
    return f"djcb_bench_{tag}"


def configure(admin_url: str, database: str) -> None:
    """Point this process's Django at `database` (its apps are loaded once per process)."""
    import django
    from django.conf import settings

    if settings.configured:
        # Another run of this process (W1, then W3): point the same settings at this run's
        # database. Django builds each thread's connection from this very dict.
        from django.db import connections

        connections.close_all()
        settings.DATABASES["default"]["NAME"] = database
        return
    url = make_url(admin_url)
    settings.configure(
        INSTALLED_APPS=["django_celery_beat"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": database,
                "USER": url.username or "postgres",
                "PASSWORD": url.password or "",
                "HOST": url.host or "127.0.0.1",
                "PORT": str(url.port or 5432),
            }
        },
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


def create_due_entry(name: str, queue: str) -> None:
    """W3: a new task due now, saved as its admin saves one (`save()` bumps the change marker);
    its messages carry the entry's name in the `periodic_entry` header, as Periodic's do."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(
        name=name,
        task=HEARTBEAT,
        interval=interval,
        queue=queue,
        headers=json.dumps({"periodic_entry": name}),
        last_run_at=datetime.now(UTC) - 2 * HOUR,
    )


def populate_in_child(admin_url: str, database: str, n: int, due: bool, queue: str) -> None:
    argv = [sys.executable, "-m", "benchmarks.django_beat", admin_url, database, str(n)]
    argv += ["1" if due else "0", queue]
    subprocess.run(argv, check=True, timeout=900)


def _populate(admin_url: str, database: str, n: int, due: bool, queue: str) -> None:
    configure(admin_url, database)
    from django.core.management import call_command
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    call_command("migrate", verbosity=0)
    last_run = datetime.now(UTC) - (2 * HOUR if due else timedelta(0))
    interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    rows: list[Any] = [
        PeriodicTask(
            name=f"bench-{i:06d}",
            task=HEARTBEAT,
            interval=interval,
            queue=queue,
            last_run_at=last_run,
            enabled=True,
        )
        for i in range(n)
    ]
    PeriodicTask.objects.bulk_create(rows, batch_size=5000)
    PeriodicTasks.update_changed()


if __name__ == "__main__":
    admin, name, count, due_flag, queue_name = sys.argv[1:6]
    _populate(admin, name, int(count), due_flag == "1", queue_name)
