"""W2 in a fresh process: start-up, CPU per idle tick and RSS growth of one scheduler.

``python -m benchmarks.idle CONTENDER N WORKDIR BROKER_URL TAG TICKS`` prints one JSON line.
The entries were written beforehand by the parent; this process builds the app, then measures
the scheduler's construction plus first tick (start-up), the process CPU time of each further
tick, and how much the resident set grew. Periodic's ticks are measured with its once-per-
sync-interval change check and beat-status write forced on every tick (its most expensive
idle tick, what it does once a second); the ticks in between are reported too. RedBeat holds
its lock, so each tick extends it as it does under `celery beat`.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from celery.utils.imports import symbol_by_name
from redbeat.schedulers import get_redis

from benchmarks.contenders import CONTENDERS, Env


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_tick(scheduler: Any) -> float:
    started = time.process_time()
    scheduler.tick()
    return time.process_time() - started


def take_redbeat_lock(scheduler: Any) -> None:
    lock = get_redis(scheduler.app).lock(
        scheduler.lock_key, timeout=scheduler.lock_timeout, sleep=scheduler.max_interval
    )
    lock.acquire()
    scheduler.lock = lock


def main() -> None:
    key, n, workdir, broker_url, tag, ticks = sys.argv[1:7]
    contender = CONTENDERS[key]
    env = Env(broker_url, Path(workdir), "w2-unused")
    app = contender.app(env, int(n), False, tag)
    app.loader.import_default_modules()
    gc.collect()
    before = rss_mb()
    cls = symbol_by_name(contender.scheduler)
    started = time.perf_counter()
    scheduler = cls(app=app, schedule_filename=str(Path(workdir) / f"idle-{tag}"), lazy=False)
    if key == "redbeat":
        take_redbeat_lock(scheduler)  # what its beat_init handler does under a Service
    scheduler.tick()
    startup = time.perf_counter() - started
    cpu: list[float] = []
    plain: list[float] = []
    for _ in range(int(ticks)):
        if key.startswith("periodic"):
            plain.append(timed_tick(scheduler))
            scheduler._next_check = 0.0
            scheduler._next_status = 0.0
        cpu.append(timed_tick(scheduler))
    grown = rss_mb() - before
    cpu.sort()
    plain.sort()
    scheduler.close()
    print(
        json.dumps(
            {
                "entries": int(n),
                "startup_s": startup,
                "tick_ms_median": 1000 * cpu[len(cpu) // 2],
                "tick_ms_mean": 1000 * sum(cpu) / len(cpu),
                "rss_growth_mb": grown,
                "plain_tick_ms_median": 1000 * plain[len(plain) // 2] if plain else None,
            }
        )
    )


if __name__ == "__main__":
    main()
