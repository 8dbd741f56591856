"""W4 replication: beat's burst into a quorum queue on 3 nodes vs a classic queue on one node.

``python -m benchmarks.replication_bench`` (run by ``nox -s bench``). Both brokers are throwaway
nodes started here (`LocalRabbitNode`, `LocalRabbitCluster`) and run at the same time, so both
bursts see the same machine. Each burst is N entries all due at once, driven through Celery
Beat's own `Service` loop with Periodic's DatabaseScheduler, and ends when the store shows all N
runs ``dispatched`` (the broker confirmed every message: a quorum queue confirms once a majority
of its replicas has it) and the queue holds N messages. Writes the ``## Broker replication``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Connection
from pydantic import SecretStr

from benchmarks.contenders import HEARTBEAT, Env, new_tag, periodic_populate, periodic_url
from benchmarks.workloads import delete_queue, depth, run_service
from project.devtools.localbroker import LocalRabbitNode
from project.devtools.localcluster import LocalRabbitCluster
from scheduling.broker.publisher import ConfirmedPublisher, OutgoingRun
from scheduling.celery.app import create_celery
from scheduling.config.compiler import SCHEDULERS
from scheduling.config.settings import (
    AppSettings,
    BeatSettings,
    BrokerSettings,
    QueueSettings,
    QueueType,
    Settings,
)
from scheduling.store import RunState, Store

ROOT = Path(__file__).resolve().parents[1]
DOCS_HEADING = "## Broker replication"
CAP = 300.0


def beat_app(env: Env, tag: str, queue_type: QueueType) -> Celery:
    settings = Settings(
        app=AppSettings(database_url=SecretStr(periodic_url(env, tag))),
        broker=BrokerSettings(url=SecretStr(env.broker_url)),
        queues={env.queue: QueueSettings(default=True, type=queue_type)},
        beat=BeatSettings(scheduler="database"),
        schedule={},
    )
    return create_celery(settings)


def burst(broker_url: str, workdir: Path, queue_type: QueueType, n: int) -> dict[str, Any]:
    env = Env(broker_url, workdir, f"w4-{queue_type}-{uuid.uuid4().hex[:6]}")
    tag = new_tag()
    periodic_populate(env, n, True, tag)
    app = beat_app(env, tag, queue_type)
    started = time.perf_counter()
    service, thread = run_service(app, SCHEDULERS["database"], workdir)
    confirmed = 0
    with Store.open(periodic_url(env, tag)) as store:
        while time.perf_counter() - started < CAP:
            confirmed = store.count_runs(state=RunState.DISPATCHED)
            if confirmed >= n:
                break
            time.sleep(0.01)
    done = time.perf_counter()
    with Connection(broker_url) as connection:
        queued = depth(connection, env.queue)
    service.stop()
    thread.join(60)
    delete_queue(broker_url, env.queue)
    publisher_rate = publisher_only(broker_url, queue_type, n)
    return {
        "queue_type": queue_type,
        "entries": n,
        "confirmed": confirmed,
        "in_queue": queued,
        "complete": confirmed >= n and queued >= n,
        "total_s": done - started,
        "confirmed_per_s": confirmed / (done - started),
        "publisher_only_per_s": publisher_rate,
    }


def publisher_only(broker_url: str, queue_type: QueueType, n: int) -> float:
    """Messages/s of `ConfirmedPublisher` alone (one pipelined, confirmed batch of `n`)."""
    queue = f"w4-pub-{queue_type}-{uuid.uuid4().hex[:6]}"
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else None
    with Connection(broker_url) as connection:
        connection.default_channel.queue_declare(
            queue, durable=True, auto_delete=False, arguments=arguments
        )
    publisher = ConfirmedPublisher(broker_url, exchange="")
    slot = datetime.now(UTC)
    runs = [
        OutgoingRun(str(uuid.uuid4()), HEARTBEAT, [], {}, queue, f"e{i}", slot) for i in range(n)
    ]
    try:
        publisher.publish(runs[:10])
        started = time.perf_counter()
        publisher.publish(runs[10:])
        rate = (n - 10) / (time.perf_counter() - started)
    finally:
        publisher.close()
        delete_queue(broker_url, queue)
    return rate


def markdown(results: dict[str, Any]) -> str:
    rows = {row["queue_type"]: row for row in results["bursts"]}
    classic, quorum = rows["classic"], rows["quorum"]
    rate, alone_rate = quorum["confirmed_per_s"], quorum["publisher_only_per_s"]
    slower = classic["confirmed_per_s"] / rate if rate else 0.0
    alone = classic["publisher_only_per_s"] / alone_rate if alone_rate else 0.0
    lines = [
        DOCS_HEADING,
        "",
        f"W4, {results['when']}, {results['machine']} (load average {results['load']:.1f} at "
        f"the start: other jobs shared the machine); `{results['command']}`. Beat's burst of "
        f"{classic['entries']:,} due entries, until the store shows every run dispatched (every "
        "message confirmed by the broker) and the queue holds them all. Both brokers ran at once "
        "on this machine: a single node, and three nodes on loopback (so replication costs CPU "
        "and fsyncs, not network).",
        "",
        "| queue | confirmed | in queue | beat: start to all confirmed | beat: confirmed/s "
        "| publisher alone: confirmed/s |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in (
        ("classic, 1 node", classic),
        ("quorum, 3-node cluster", quorum),
    ):
        lines.append(
            f"| {label} | {row['confirmed']:,} | {row['in_queue']:,} | {row['total_s']:.2f} s | "
            f"{row['confirmed_per_s']:,.0f} | {row['publisher_only_per_s']:,.0f} |"
        )
    lines += [
        "",
        f"Classic over quorum: {slower:.2f} for beat's confirmed dispatch rate, {alone:.2f} "
        "for the publisher alone (above 1: the quorum queue is slower). A quorum queue confirms "
        "a message once a majority of its three replicas has it in their Raft logs, a classic "
        "queue from one node; on one machine the three nodes also share its two CPUs. "
        "Beat's time includes its start-up (loading the entries) and the ledger writes, which "
        "do not depend on the queue type.",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace this section of `path` (other sections are left as they are)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(DOCS_HEADING)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: text + "\n", existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--write", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true")
    options = parser.parse_args()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "command": f"python -m benchmarks.replication_bench --entries {options.entries}",
        "load": os.getloadavg()[0],
        "bursts": [],
    }
    with tempfile.TemporaryDirectory(prefix="periodic-w4-") as tmp:
        workdir = Path(tmp)
        with (
            LocalRabbitNode(workdir / "single") as node,
            LocalRabbitCluster(workdir / "cluster") as cluster,
        ):
            plan: list[tuple[QueueType, str]] = [("classic", node.url), ("quorum", cluster.url)]
            for queue_type, url in plan:
                print(f"W4 burst {queue_type} ...", flush=True)
                row = burst(url, workdir, queue_type, options.entries)
                results["bursts"].append(row)
                print(json.dumps(row), flush=True)
    text = markdown(results)
    print(text)
    if not options.no_write:
        write_section(options.write, text)


if __name__ == "__main__":
    main()
