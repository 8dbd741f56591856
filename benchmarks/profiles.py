"""Where Periodic's beat spends its time, for the targets the benchmark reports as missed.

``python -m benchmarks.profiles idle {sqlite,postgresql} [N]``: the idle beat loop for 20 s
(Celery's `Service`, lease thread and all), its CPU split by thread (the beat loop, which sleeps
in `Wakeup.wait`, and the lease thread, read from their own CPU clocks) and by step: ticks, the
fallback change-sequence reads (inside the sleep), the lease rounds (renewal and status, one
transaction) and garbage collections.

``python -m benchmarks.profiles standby {sqlite,postgresql} [N]``: the same for a standby beat
(another holder has the lease): its lease round is a look at the lease plus its status.

``python -m benchmarks.profiles burst {sqlite,postgresql} [N]``: N entries (default 10,000) due
at once, dispatched by ticking the scheduler; the wall time split into the take-over load, claim
(with the marks of earlier chunks), sending (encoding and writing the messages), waiting for
confirms, and the final mark, the rest of the dispatch being planning and the due heap; and the
process CPU per message over the whole dispatch.

The broker is ``PERIODIC_BENCH_BROKER_URL`` (default the local RabbitMQ on 5672, one queue of
its own, deleted after); PostgreSQL as in `benchmarks.contenders`. Prints plain text.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.beat import Service
from kombu import Connection

from benchmarks.contenders import CONTENDERS, Env, new_tag
from benchmarks.workloads import fresh_queue
from scheduling.beat.scheduler import DatabaseScheduler
from scheduling.store import Store

BROKER = os.environ.get("PERIODIC_BENCH_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//"
KEYS = {"sqlite": "periodic", "postgresql": "periodic-pg"}


class Timings:
    """Thread CPU (idle) or wall time (burst) and calls, per wrapped method."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.spent: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        real = getattr(owner, name)
        key = label or name

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self.clock()
            try:
                return real(*args, **kwargs)
            finally:
                self.spent[key] += self.clock() - started
                self.calls[key] += 1

        setattr(owner, name, timed)


def build(
    store: str, n: int, due: bool, standby: bool = False
) -> tuple[DatabaseScheduler, Any, str, str]:
    """A scheduler over N fresh entries; `standby`: another holder has taken the lease for an
    hour first, so this beat stands by for the whole measurement."""
    contender = CONTENDERS[KEYS[store]]
    tag = new_tag()
    queue = fresh_queue(BROKER, "profile", declare=False)
    env = Env(BROKER, Path(tempfile.mkdtemp(prefix="periodic-profile-")), queue)
    contender.populate(env, n, due, tag)
    app = contender.app(env, n, due, tag)
    scheduler = DatabaseScheduler(app=app, lazy=True)
    if standby:
        leader = Store.open(scheduler.settings.app.database_url.get_secret_value())
        try:
            leader.acquire_lease("another-beat", timedelta(hours=1))
        finally:
            leader.close()
    scheduler.setup_schedule()
    return scheduler, contender, tag, queue


def thread_cpu(thread: threading.Thread | None) -> float:
    """CPU seconds a running thread has used so far (its own clock, read from outside)."""
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def idle(store: str, n: int, window: float = 20.0, standby: bool = False) -> None:
    scheduler, contender, tag, _ = build(store, n, due=False, standby=standby)
    scheduler.tick()
    timings = Timings(time.thread_time)
    assert scheduler.leadership is not None
    assert scheduler.leadership.leading is not standby
    round_label = "standby's look and status" if standby else "renewal and status"
    timings.wrap(scheduler.leadership, "run_round", f"lease thread: {round_label} round")
    timings.wrap(scheduler, "_tick", "beat loop: tick (work)")
    timings.wrap(scheduler.wakeup, "current_seq", "beat loop: change-sequence read (fallback)")
    collections = Timings(time.thread_time)
    started: dict[int, float] = {}

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[threading.get_ident()] = time.thread_time()
            return
        key = f"garbage collection, generation {info['generation']}"
        collections.spent[key] += time.thread_time() - started.pop(threading.get_ident(), 0.0)
        collections.calls[key] += 1

    gc.callbacks.append(on_collection)
    service = Service(scheduler.app, scheduler_cls=DatabaseScheduler)
    service.__dict__["scheduler"] = scheduler
    thread = threading.Thread(target=service.start, daemon=True)
    thread.start()
    time.sleep(2.0)
    lease_thread = scheduler.leadership._thread
    timings.spent.clear()
    timings.calls.clear()
    collections.spent.clear()
    collections.calls.clear()
    cpu = time.process_time()
    loop_cpu, lease_cpu = thread_cpu(thread), thread_cpu(lease_thread)
    time.sleep(window)
    loop_cpu, lease_cpu = thread_cpu(thread) - loop_cpu, thread_cpu(lease_thread) - lease_cpu
    cpu = time.process_time() - cpu
    gc.callbacks.remove(on_collection)
    service.stop()
    thread.join(30)
    contender.cleanup(tag)
    whole = cpu / window * 1000
    role = "standby" if standby else "leader"
    print(f"idle {role}, {store}, {n:,} entries, {window:g} s: whole process {whole:.3f} ms/s")
    for label, seconds in (("beat loop thread, all of it", loop_cpu), ("lease thread", lease_cpu)):
        print(f"  {label:48} {seconds / window * 1000:7.3f} ms/s")
    spent = timings.spent + collections.spent
    calls = timings.calls + collections.calls
    for label, seconds in sorted(spent.items()):
        per_s, per_window = seconds / window * 1000, calls[label] / window
        print(f"  {label:48} {per_s:7.3f} ms/s  {per_window:6.2f}/s")


def burst(store: str, n: int) -> None:
    scheduler, contender, tag, queue = build(store, n, due=True)
    timings = Timings(time.perf_counter)
    assert scheduler.store is not None
    scheduler._rest = lambda delay: 0.0  # type: ignore[method-assign]  # no sleep after it
    timings.wrap(scheduler, "_take_over", "take-over: load the due index (first tick)")
    timings.wrap(scheduler.store, "claim_slots", "claim, with earlier marks (store)")
    timings.wrap(scheduler.store, "mark_dispatched", "mark dispatched, alone (store)")
    timings.wrap(scheduler.publisher, "send", "send: encode and write (broker)")
    timings.wrap(scheduler.publisher, "wait", "wait for confirms (broker)")
    timings.wrap(scheduler.publisher, "_open", "broker connection (first: connect)")
    timings.wrap(scheduler, "_dispatch", "dispatch, all chunks")
    first: list[float] = []
    wait = scheduler.publisher.wait

    def noting_first(batch: Any) -> None:
        wait(batch)
        if not first:
            first.append(time.perf_counter())

    scheduler.publisher.wait = noting_first  # type: ignore[method-assign]
    dispatch = scheduler._dispatch
    began: list[float] = []
    cpu: list[float] = []

    def noting_start(*args: Any) -> None:
        began.append(time.perf_counter())
        cpu.append(time.process_time())
        dispatch(*args)
        cpu.append(time.process_time())

    scheduler._dispatch = noting_start  # type: ignore[method-assign]
    started = time.perf_counter()
    while scheduler._more_due or not timings.calls["dispatch, all chunks"]:
        scheduler.tick()
    total = time.perf_counter() - started
    confirmed = (first[0] - began[0]) * 1000 if first and began else float("nan")
    scheduler.close()
    with Connection(BROKER) as connection:
        connection.default_channel.queue_delete(queue)
    contender.cleanup(tag)
    print(f"burst of {n:,}, {store}: {total:.3f} s from the first tick to the last mark")
    print(f"  first chunk confirmed by the broker {confirmed:.1f} ms after the dispatch began")
    if len(cpu) >= 2:
        print(f"  process CPU per message in the dispatch: {(cpu[-1] - cpu[0]) / n * 1e6:.0f} µs")
    for label, spent in sorted(timings.spent.items()):
        print(f"  {label:40} {spent:7.3f} s  {timings.calls[label]:5d} calls")


def main() -> None:
    kind, store = sys.argv[1], sys.argv[2]
    if kind in ("idle", "standby"):
        idle(store, int(sys.argv[3]) if len(sys.argv) > 3 else 10_000, standby=kind == "standby")
    else:
        burst(store, int(sys.argv[3]) if len(sys.argv) > 3 else 10_000)


if __name__ == "__main__":
    main()
