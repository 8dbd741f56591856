"""W2 in a fresh process: start-up, CPU per idle tick and RSS growth of one scheduler.

``python -m benchmarks.idle CONTENDER N WORKDIR BROKER_URL TAG TICKS`` prints one JSON line.
The entries were written beforehand by the parent; this process builds the app, then measures
the scheduler's construction plus first tick (start-up), the process CPU time of each further
tick, the sleep each idle tick asks for (so ticks per idle second, and CPU per idle second),
and how much the resident set grew.

Periodic's idle tick is what `celery beat` runs: it wakes every sync_interval / CHANGE_POLLS,
reads the store's change sequence and looks at the top of its heap. The change check is forced
on every measured tick (a tight loop would otherwise skip it, the poll time not having come);
the tick writes nothing, the beat status being written by the lease thread every lease_ttl / 3.
The cost of one such status write is measured separately, for the record. RedBeat holds its
lock, so each tick extends it as it does under `celery beat`.
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


def timed_tick(scheduler: Any) -> tuple[float, float]:
    """(process CPU seconds of one tick, the sleep it asked for)."""
    started = time.process_time()
    delay = scheduler.tick()
    return time.process_time() - started, float(delay)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def cost_ms(call: Any, times: int) -> tuple[float, float]:
    """Median (process CPU ms, wall ms) of `call()`."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(times):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return 1000 * median(cpu), 1000 * median(wall)


def lease_thread_cost(scheduler: Any, times: int) -> dict[str, float]:
    """What Periodic's lease thread does every lease_ttl / 3 while idle: renew, write status.

    Both are committed store writes (SQLite syncs its log), so wall time is given too.
    """
    status_cpu, status_wall = cost_ms(lambda: scheduler._report_status(True), times)
    renew_cpu, renew_wall = cost_ms(scheduler.leadership.run_round, times)
    period = scheduler.settings.beat.lease_ttl.total_seconds() / 3
    return {
        "status_write_cpu_ms": status_cpu,
        "status_write_wall_ms": status_wall,
        "lease_renew_cpu_ms": renew_cpu,
        "lease_renew_wall_ms": renew_wall,
        "lease_period_s": period,
        "lease_cpu_ms_per_idle_s": (status_cpu + renew_cpu) / period,
    }


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
    delays: list[float] = []
    for _ in range(int(ticks)):
        if key.startswith("periodic"):
            scheduler._next_check = 0.0  # the change check every idle tick makes
        spent, delay = timed_tick(scheduler)
        cpu.append(spent)
        delays.append(delay)
    grown = rss_mb() - before
    tick_ms, sleep_s = 1000 * median(cpu), median(delays)
    result: dict[str, Any] = {
        "entries": int(n),
        "startup_s": startup,
        "tick_ms_median": tick_ms,
        "tick_ms_mean": 1000 * sum(cpu) / len(cpu),
        "idle_sleep_s": sleep_s,
        "ticks_per_s": 1 / sleep_s,
        "cpu_ms_per_idle_s": tick_ms / sleep_s,
        "rss_growth_mb": grown,
    }
    if key.startswith("periodic"):
        result.update(lease_thread_cost(scheduler, int(ticks)))
    scheduler.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
