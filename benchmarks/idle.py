"""W2 in a fresh process: start-up, CPU per idle second of the whole process, RSS growth.

``python -m benchmarks.idle CONTENDER N WORKDIR BROKER_URL TAG WINDOW_S`` prints one JSON line.
The entries were written beforehand by the parent; this process builds the app, then measures
the scheduler's construction plus first tick (start-up), then runs Celery's own beat loop
(`celery.beat.Service`, what ``celery beat`` runs) on that scheduler for WINDOW_S seconds and
reports the process CPU time (every thread: Periodic's lease thread with its renewals and status
writes, RedBeat's lock extensions, each store's driver) divided by the window, and how often the
loop ticked in the window and the median CPU time of those ticks. Nothing is due
and nothing changes during the window, so this is what an idle beat costs, measured rather than
computed from one tick. RedBeat holds its lock, as its beat_init handler does under a Service.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from celery.beat import Service
from celery.utils.imports import symbol_by_name
from redbeat.schedulers import get_redis

from benchmarks.contenders import CONTENDERS, Env


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def time_ticks(scheduler: Any) -> list[float]:
    """CPU time of the loop's thread in each `tick()` Celery's loop makes from now on, as it
    makes them (after its real sleep, not back to back): what one idle wake-up costs. CPU, not
    wall time: Periodic's tick does its sleeping inside (it waits on its change signal)."""
    durations: list[float] = []
    real = scheduler.tick

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return real(*args, **kwargs)
        finally:
            durations.append(time.thread_time() - started)

    scheduler.tick = timed
    return durations


def take_redbeat_lock(scheduler: Any) -> None:
    lock = get_redis(scheduler.app).lock(
        scheduler.lock_key, timeout=scheduler.lock_timeout, sleep=scheduler.max_interval
    )
    lock.acquire()
    scheduler.lock = lock


def main() -> None:
    key, n, workdir, broker_url, tag, window = sys.argv[1:7]
    contender = CONTENDERS[key]
    env = Env(broker_url, Path(workdir), "w2-unused")
    app = contender.app(env, int(n), False, tag)
    app.loader.import_default_modules()
    gc.collect()
    before = rss_mb()
    cls = symbol_by_name(contender.scheduler)
    started = time.perf_counter()
    scheduler = cls(app=app, schedule_filename=str(Path(workdir) / f"idle-{tag}"), lazy=False)
    if key.startswith("redbeat"):
        take_redbeat_lock(scheduler)  # what its beat_init handler does under a Service
    scheduler.tick()
    startup = time.perf_counter() - started
    service = Service(app, scheduler_cls=cls, schedule_filename=str(Path(workdir) / f"s-{tag}"))
    service.__dict__["scheduler"] = scheduler  # the started one (a cached_property)
    ticks = time_ticks(scheduler)
    thread = threading.Thread(target=service.start, daemon=True)
    thread.start()
    time.sleep(2.0)  # settle: the loop's first sleeps, the lease thread's first round
    ticks.clear()
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    time.sleep(float(window))
    cpu = time.process_time() - cpu_started
    wall = time.perf_counter() - wall_started
    in_window = list(ticks)
    grown = rss_mb() - before
    service.stop()
    thread.join(30)
    result: dict[str, Any] = {
        "entries": int(n),
        "startup_s": startup,
        "window_s": wall,
        "cpu_ms_per_idle_s": 1000 * cpu / wall,
        "ticks_per_s": len(in_window) / wall,
        "tick_cpu_ms_median": 1000 * statistics.median(in_window) if in_window else None,
        "rss_growth_mb": grown,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
