"""The workloads W0-W3 of the beat benchmark, each returning plain dicts of figures.

W0  ceilings: raw kombu publish with confirms off and with a confirm wait per message, Celery's
    ``send_task`` through one held producer (what Beat does), and Periodic's pipelined
    `ConfirmedPublisher`.
W1  burst: N entries all due at once, driven through Celery Beat's own `Service` loop, until all
    N messages are in the queue.
    Also the first message's latency: from the start of the step that dispatches (Periodic:
    `_dispatch`, after its take-over load; the others: the tick) to the message in the queue,
    seen by a separate process (`benchmarks.first_message`) on the wall clock, so that it does
    not wait for the beat process's GIL as a thread of that process would.
W2  idle: start-up time, CPU per idle second of the whole beat process over a window (Celery's
    own loop running, lease thread and all) and RSS growth with N entries none of which is due;
    one fresh process per contender and size (`python -m benchmarks.idle`).
W3  propagation: from a store write (a new entry due now) to its first message in the queue,
    with a running beat holding 0 or N other entries; samples spread over the loop's sleep.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import Service
from kombu import Connection, Exchange, Producer, Queue

from benchmarks import django_beat
from benchmarks.contenders import (
    CONTENDERS,
    HEARTBEAT,
    HOUR,
    Env,
    floor_hour,
    new_tag,
)
from scheduling.broker.publisher import ConfirmedPublisher, OutgoingRun
from scheduling.broker.topology import queue_status
from scheduling.config.settings import ScheduleEntry
from scheduling.store import Store


def fresh_queue(broker_url: str, prefix: str, declare: bool = True) -> str:
    """A new queue name; declared here unless the contender declares its own topology."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    if not declare:
        return name
    with Connection(broker_url) as connection:
        Queue(name, Exchange(name, "direct"), name, durable=True).bind(connection).declare()
    return name


def delete_queue(broker_url: str, name: str) -> None:
    with Connection(broker_url) as connection:
        connection.default_channel.queue_delete(name)


def depth(connection: Connection, queue: str) -> int:
    return queue_status(connection, queue).messages


# --- W0 --------------------------------------------------------------------------------


def w0_ceilings(broker_url: str, n: int) -> dict[str, float]:
    results: dict[str, float] = {}
    body = [[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    for label, confirm in (
        ("kombu publish, confirms off", False),
        ("kombu publish, confirm per message", True),
    ):
        queue = fresh_queue(broker_url, "w0")
        with Connection(broker_url, transport_options={"confirm_publish": confirm}) as conn:
            producer = Producer(conn.channel(), exchange=Exchange(queue, "direct"))
            started = time.perf_counter()
            for _ in range(n):
                producer.publish(body, routing_key=queue, serializer="json", delivery_mode=2)
            if not confirm:
                while depth(conn, queue) < n:
                    time.sleep(0.005)
            results[label] = n / (time.perf_counter() - started)
        delete_queue(broker_url, queue)

    queue = fresh_queue(broker_url, "w0")
    app = Celery("w0", broker=broker_url, set_as_current=False)
    app.conf.task_default_queue = queue
    with app.connection_for_write() as conn:
        producer = app.amqp.Producer(conn, auto_declare=False)
        started = time.perf_counter()
        for _ in range(n):
            app.send_task(HEARTBEAT, producer=producer, queue=queue)
        while depth(conn, queue) < n:
            time.sleep(0.005)
        results["send_task, one held producer (Beat's path)"] = n / (time.perf_counter() - started)
    delete_queue(broker_url, queue)

    queue = fresh_queue(broker_url, "w0")
    publisher = ConfirmedPublisher(broker_url, exchange=queue)
    slot = datetime.now(UTC)
    runs = [
        OutgoingRun(str(uuid.uuid4()), HEARTBEAT, [], {}, queue, f"e{i}", slot) for i in range(n)
    ]
    publisher.publish(runs[:10])
    started = time.perf_counter()
    publisher.publish(runs[10:])
    results["Periodic ConfirmedPublisher, pipelined confirms"] = (n - 10) / (
        time.perf_counter() - started
    )
    publisher.close()
    delete_queue(broker_url, queue)
    return results


# --- W1 --------------------------------------------------------------------------------


def run_service(
    app: Celery, scheduler: str, workdir: Path, on_created: Any = None
) -> tuple[Service, threading.Thread]:
    service = Service(app, scheduler_cls=scheduler, schedule_filename=str(workdir / "sched"))
    if on_created is not None:
        on_created(service.scheduler)  # created here (a cached_property), before the loop runs
    thread = threading.Thread(target=service.start, daemon=True)
    thread.start()
    return service, thread


def record_dispatch_starts(scheduler: Any, starts: list[float]) -> None:
    """Note when each dispatching step begins (see W1 in the module doc)."""
    name = "_dispatch" if hasattr(scheduler, "_dispatch") else "tick"
    real = getattr(scheduler, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        starts.append(time.time())  # the wall clock: compared with another process's
        return real(*args, **kwargs)

    setattr(scheduler, name, wrapped)


def w1_burst(broker_url: str, workdir: Path, key: str, n: int, cap: float) -> dict[str, Any]:
    contender = CONTENDERS[key]
    queue = fresh_queue(broker_url, "w1", declare=not key.startswith("periodic"))
    tag = new_tag()
    env = Env(broker_url, workdir, queue)
    contender.populate(env, n, True, tag)
    app = contender.app(env, n, True, tag)
    starts: list[float] = []
    watcher = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.first_message", broker_url, queue],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    if watcher.stdout.readline().strip() != "ready":
        raise RuntimeError("W1: the first-message watcher did not start")
    started = time.perf_counter()
    service, thread = run_service(
        app, contender.scheduler, workdir, lambda s: record_dispatch_starts(s, starts)
    )
    first: float | None = None
    count = 0
    with Connection(broker_url) as conn:
        while True:
            count = depth(conn, queue)
            now = time.perf_counter()
            if count and first is None:
                first = now
            if count >= n or now - started > cap:
                break
            time.sleep(0.01)
    done = time.perf_counter()
    service.stop()
    thread.join(60)
    try:
        seen = float(watcher.communicate(timeout=30)[0].strip() or "nan")
    except subprocess.TimeoutExpired:
        watcher.kill()
        seen = float("nan")
    delete_queue(broker_url, queue)
    contender.cleanup(tag)
    window = done - (first or started)
    began = max((at for at in starts if at <= seen), default=float("nan"))
    return {
        "contender": contender.name,
        "entries": n,
        "messages": count,
        "complete": count >= n,
        "msgs_per_s": count / (done - started),
        "first_to_last_msgs_per_s": count / window if window > 0 else 0.0,
        "first_message_s": (first or done) - started,
        "first_message_after_dispatch_s": seen - began,
        "total_s": done - started,
    }


# --- W2 --------------------------------------------------------------------------------


def w2_idle(broker_url: str, workdir: Path, key: str, n: int, window: float) -> dict[str, Any]:
    contender = CONTENDERS[key]
    tag = new_tag()
    env = Env(broker_url, workdir, "w2-unused")
    contender.populate(env, n, False, tag)
    argv = [sys.executable, "-m", "benchmarks.idle", key, str(n), str(workdir), broker_url, tag]
    argv.append(str(window))
    try:
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=900)
    finally:
        contender.cleanup(tag)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["contender"] = contender.name
    return result


# --- W3 --------------------------------------------------------------------------------


def w3_propagation(
    broker_url: str, workdir: Path, n: int, samples: int, key: str = "periodic"
) -> dict[str, Any]:
    contender = CONTENDERS[key]
    periodic = key.startswith("periodic")
    queue = fresh_queue(broker_url, "w3", declare=not periodic)
    tag = new_tag()
    env = Env(broker_url, workdir, queue)
    contender.populate(env, n, False, tag)
    app = contender.app(env, n, False, tag)
    service, thread = run_service(app, contender.scheduler, workdir)
    scheduler: Any = service.scheduler
    latencies: list[float] = []
    with contextlib.ExitStack() as stack, Connection(broker_url) as conn:
        channel = conn.channel()
        if periodic:
            url = app.conf["periodic_settings"].app.database_url.get_secret_value()
            create = periodic_writer(stack.enter_context(Store.open(url)), queue)
            # The leader's status is written before its first tick loads the table (0.3-3 s
            # at 100k): a change written meanwhile would measure that start-up (W2's figure),
            # not propagation. It sleeps on its change signal once loaded.
            wait_until(lambda: scheduler.wakeup.listening, "the beat never loaded its table")
        else:
            create = functools.partial(django_beat.create_due_entry, queue=queue)
        for index in range(samples):
            time.sleep(random.uniform(0.0, 1.2))  # spread over the beat loop's sleep
            name = f"w3-{index}"
            started = time.perf_counter()
            create(name)
            while True:
                message = channel.basic_get(queue, no_ack=True)
                if message is not None and sent_for(message) == name:
                    latencies.append(time.perf_counter() - started)
                    break
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"W3: no message for {name} within 30 s")
                if message is None:
                    time.sleep(0.002)
    service.stop()
    thread.join(60)
    delete_queue(broker_url, queue)
    contender.cleanup(tag)
    ordered = sorted(latencies)
    return {
        "key": key,
        "entries": n,
        "sync_interval_s": getattr(scheduler, "sync_interval", None),
        "poll_s": getattr(scheduler, "poll_interval", None),
        "samples": len(ordered),
        "median_s": statistics.median(ordered),
        "p99_s": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "max_s": ordered[-1],
        "latencies": ordered,
    }


def periodic_writer(store: Store, queue: str) -> Callable[[str], None]:
    """A new entry due now, written through a second `Store` as the API does, once beat leads."""
    wait_until_leading(store)
    definition = ScheduleEntry(task=HEARTBEAT, every=HOUR, catchup="latest", queue=queue)

    def create(name: str) -> None:
        store.create_entry(name, definition, next_run_at=floor_hour(datetime.now(UTC)))

    return create


def sent_for(message: Any) -> str | None:
    """The entry a message was sent for (django-celery-beat's entries set the same header)."""
    entry = message.headers.get("periodic_entry")
    return None if entry is None else str(entry)


def wait_until_leading(store: Store, timeout: float = 120.0) -> None:
    wait_until(
        lambda: any(status.role == "leader" for status in store.beats()),
        "the beat never became leader",
        timeout,
    )


def wait_until(condition: Any, failure: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"W3: {failure}")
