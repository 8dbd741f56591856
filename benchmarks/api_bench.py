"""HTTP API benchmark: async views next to their plain sync twins, under gunicorn and wrk.

``python -m benchmarks.api_bench`` (part of ``nox -s bench``). One gunicorn, configured by the
shipped `project.gunicorn_config` (gthread, a worker per core x 8 threads), serves the real async
views and, under ``/bench/sync``, sync twins that do the same work with the same code, minus the
event loop: the store read, the run-now outbox (claim, confirmed publish, mark dispatched), the
queue status of every queue (one after the other instead of concurrently). wrk drives each endpoint
in turn, async and sync alternating, and the figures are written as ratios to the sync twin
measured in the same run, so they carry over between machines. After each ``POST /run`` pass the
queue depth is compared with the number of 202 answers: every accepted run must be a confirmed
message.

The broker is ``PERIODIC_BENCH_BROKER_URL`` if set, else a throwaway local RabbitMQ node; the
store is a SQLite file in a temporary directory unless ``--database-url`` names another.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask
from kombu import Connection

from benchmarks.contenders import (
    POSTGRES_ENV,
    new_tag,
    postgres_create,
    postgres_drop,
    postgres_url,
)
from project import gunicorn_config
from project.app import create_app
from project.devtools.localbroker import LocalRabbitNode
from project.devtools.serve import WEB_CONFIG
from scheduling.broker.topology import declare_topology, queue_status
from scheduling.config.settings import ScheduleEntry
from scheduling.flask.api.auth import authenticate, known_tokens
from scheduling.flask.api.problems import install_problem_handlers
from scheduling.flask.api.schedules import load_view
from scheduling.flask.api.schemas import queue_body
from scheduling.flask.services import current_services
from scheduling.operations import entries as operations

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway app's token
ENTRY = "bench"
QUEUE = "bench-default"
WORKERS, THREADS = gunicorn_config.workers, gunicorn_config.threads
"""The shipped server model (`project.gunicorn_config`), as serve and compose.yaml run it."""
DOCS_HEADING = "## HTTP API"
"""Followed by the store, e.g. ``## HTTP API (postgresql store)``: one section per store."""
BROKER_ENV = "PERIODIC_BENCH_BROKER_URL"

SETTINGS = """\
[app]
timezone = "UTC"
database_url = "{database_url}"
[broker]
url = "{broker_url}"
[queues.bench-high]
priority = 9
[queues.bench-default]
priority = 5
default = true
[queues.bench-low]
priority = 1
[beat]
scheduler = "database"
[[api.tokens]]
name = "bench"
secret = "{token}"
scope = "write"
"""


def bench_app() -> Flask:
    """The real app plus sync twins of the benchmarked endpoints (gunicorn entry point)."""
    app = create_app()
    twins = Blueprint("sync_twins", __name__, url_prefix="/bench/sync")
    install_problem_handlers(twins)

    @twins.before_request
    def require_token() -> None:
        authenticate(known_tokens(current_services().settings.api.tokens))

    @twins.get("/schedules/<name>")
    def get_schedule(name: str) -> dict[str, Any]:
        return load_view(current_services(), name)

    @twins.post("/schedules/<name>/run")
    def run_schedule(name: str) -> tuple[dict[str, str], int]:
        # The same batcher (history included), waited on by the thread.
        run = current_services().run_now(name, "token:bench")
        return {"task_id": run.task_id, "run": f"/api/v1/runs/{run.task_id}"}, 202

    @twins.post("/schedules/<name>/run-unbatched")
    def run_schedule_unbatched(name: str) -> tuple[dict[str, str], int]:
        """The reference: one claim and one mark transaction per request (no group commit)."""
        services = current_services()
        run = operations.run_now(services.store, services.publisher, services.settings, name)
        return {"task_id": run.task_id, "run": f"/api/v1/runs/{run.task_id}"}, 202

    @twins.get("/queues")
    def list_queues() -> dict[str, Any]:
        services = current_services()
        statuses = {name: services.broker.queue_status(name) for name in services.settings.queues}
        routed = services.routed.counts(services.store, services.settings)
        views = operations.queue_views(services.settings, statuses, routed)
        return {"items": [queue_body(view) for view in views]}

    app.register_blueprint(twins)

    @app.get("/bench/sync/healthz")
    def sync_healthz() -> dict[str, str]:
        """The anchor: the trivial sync twin of the async ``/healthz`` (no token either)."""
        return {"status": "ok"}

    return app


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int


def parse_wrk(output: str) -> WrkResult:
    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {label}th percentile in wrk output:\n{output}")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if rate is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    return WrkResult(
        float(rate.group(1)),
        latency("50"),
        latency("99"),
        int(total.group(1)),
        int(errors.group(1)) if errors else 0,
    )


def wrk(url: str, method: str, seconds: int, connections: int, scripts: Path) -> WrkResult:
    script = scripts / f"{method.lower()}.lua"
    script.write_text(f'wrk.method = "{method}"\n', encoding="utf-8")
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
        "-H", f"Authorization: Bearer {TOKEN}", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return parse_wrk(done.stdout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def broker(work: Path) -> Iterator[str]:
    url = os.environ.get(BROKER_ENV)
    if url:
        yield url
        return
    with LocalRabbitNode(work / "rabbitmq") as node:
        yield node.url


@contextlib.contextmanager
def gunicorn(settings_file: Path, port: int) -> Iterator[str]:
    environment = {**os.environ, "PERIODIC_SETTINGS": str(settings_file)}
    command = [
        sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "-c", WEB_CONFIG,
        "-b", f"127.0.0.1:{port}", "--log-level", "warning", "benchmarks.api_bench:bench_app()",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=environment, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not come up") from None
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def queue_depth(broker_url: str) -> int:
    with Connection(broker_url) as connection:
        return queue_status(connection, QUEUE).messages


def purge(broker_url: str) -> None:
    with Connection(broker_url) as connection:
        channel: Any = connection.default_channel
        channel.queue_purge(QUEUE)


ENDPOINTS = [
    ("GET", "/healthz", "GET /healthz (anchor: trivial view)"),
    ("GET", "/schedules/{entry}", "GET /schedules/{name}"),
    ("POST", "/schedules/{entry}/run", "POST /schedules/{name}/run"),
    ("GET", "/queues", "GET /queues"),
]


VARIANTS = (("async", "/api/v1"), ("sync", "/bench/sync"))
UNBATCHED = {"/schedules/{entry}/run": "/bench/sync/schedules/{entry}/run-unbatched"}
"""Endpoints measured a third time, as a sync view without group commit (the before figure)."""
IN_PROCESS_REQUESTS = 1000
IN_PROCESS_HEADER = [
    "In process, one thread, async and sync requests strictly interleaved (Flask test client, "
    f"{IN_PROCESS_REQUESTS} each): the cost of the async path itself, free of wrk and of the "
    "shared machine's drift.",
    "",
    "| endpoint | async us/request | sync us/request | async/sync |",
    "|---|---:|---:|---:|",
]


def run(
    seconds: int, connections: int, rounds: int, database_url: str | None, only: str | None = None
) -> tuple[list[str], str, str]:
    rows: list[str] = []
    reference: WrkResult | None = None
    dialect = "sqlite"
    with tempfile.TemporaryDirectory(prefix="periodic-api-bench-") as tmp:
        work = Path(tmp)
        with broker(work) as broker_url:
            url = database_url or f"sqlite:///{work / 'periodic.db'}"
            settings_file = work / "settings.toml"
            settings_file.write_text(
                SETTINGS.format(database_url=url, broker_url=broker_url, token=TOKEN),
                encoding="utf-8",
            )
            os.environ["PERIODIC_SETTINGS"] = str(settings_file)
            seed = create_app()
            services = periodic_of(seed)
            entry = ScheduleEntry.model_validate(
                {"task": "scheduling.tasks.heartbeat.heartbeat", "every": "1h"}
            )
            services.store.create_entry(ENTRY, entry, next_run_at=datetime.now(UTC))
            with Connection(broker_url) as connection:
                declare_topology(connection, services.settings)
            services.close()
            with gunicorn(settings_file, free_port()) as base:
                for method, path, label in ENDPOINTS:
                    if only is not None and only not in label:
                        continue
                    results: dict[str, list[WrkResult]] = {"async": [], "sync": [], "ref": []}
                    for round_index in range(rounds):
                        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
                        if path in UNBATCHED:
                            target = base + UNBATCHED[path].format(entry=ENTRY)
                            result = measure(target, method, seconds, connections, work, broker_url)
                            results["ref"].append(result)
                            print(f"{label:28} unbatched {result}", flush=True)
                        for kind, prefix in order:
                            if path == "/healthz":
                                prefix = "" if kind == "async" else "/bench/sync"
                            target = base + prefix + path.format(entry=ENTRY)
                            result = measure(target, method, seconds, connections, work, broker_url)
                            results[kind].append(result)
                            print(f"{label:28} {kind:5} {result}", flush=True)
                    rows.append(table_row(label, median(results["async"]), median(results["sync"])))
                    if results["ref"]:
                        reference = median(results["ref"])
                dialect = url.split(":", 1)[0].split("+", 1)[0]
            sequential = in_process(IN_PROCESS_REQUESTS, only)
            purge(broker_url)
    command = (
        f"python -m benchmarks.api_bench --seconds {seconds} --connections {connections} "
        f"--rounds {rounds}"
    )
    if reference is not None:
        rows += ["", reference_line(reference)]
    return [*rows, "", *IN_PROCESS_HEADER, *sequential], command, dialect


def reference_line(result: WrkResult) -> str:
    return (
        "Reference, same run: `POST /run` as a sync view *without* group commit (one claim and "
        "one mark transaction per request, as before it was batched): "
        f"{result.requests_per_second:,.0f} req/s, p50 / p99 {result.p50_ms:.1f} / "
        f"{result.p99_ms:.1f} ms."
    )


def measure(
    target: str, method: str, seconds: int, connections: int, work: Path, broker_url: str
) -> WrkResult:
    """One wrk pass after a short warm-up; a POST pass checks that every 202 is a message."""
    wrk(target, method, 1, connections, work)
    purge(broker_url)
    result = wrk(target, method, seconds, connections, work)
    if method == "POST":
        accepted = result.requests - result.non_2xx
        depth = queue_depth(broker_url)
        if depth < accepted:
            raise SystemExit(
                f"{target}: {accepted} runs accepted but only {depth} messages in the queue"
            )
    return result


def median(results: list[WrkResult]) -> WrkResult:
    """The pass with the median rate (its latencies come with it)."""
    ordered = sorted(results, key=lambda result: result.requests_per_second)
    return ordered[len(ordered) // 2]


def in_process(requests: int, only: str | None = None) -> list[str]:
    """Per-request cost through the Flask test client, async and sync strictly interleaved.

    One thread, no network, no wrk: what remains is the view path itself (loop hand-off, pool
    hop, serialisation), and interleaving cancels out the drift of a shared machine's load.
    """
    app = bench_app()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rows = []
    for method, path, label in ENDPOINTS:
        if only is not None and only not in label:
            continue
        twin = "/bench/sync" + (path if path != "/healthz" else "/healthz")
        routes = {"async": ("" if path == "/healthz" else "/api/v1") + path, "sync": twin}
        spent = {"async": 0.0, "sync": 0.0}
        for index in range(requests + requests // 10):
            for kind, route in routes.items():
                started = time.perf_counter()
                response = client.open(route.format(entry=ENTRY), method=method, headers=headers)
                if index >= requests // 10:  # the first tenth warms up
                    spent[kind] += time.perf_counter() - started
                if response.status_code >= 300:
                    raise SystemExit(f"{route}: {response.status_code}")
        a, b = (spent[kind] / requests * 1e6 for kind in ("async", "sync"))
        rows.append(f"| `{label}` | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
    periodic_of(app).close()
    return rows


def periodic_of(app: Flask) -> Any:
    return app.extensions["periodic"]


def table_row(label: str, asynchronous: WrkResult, synchronous: WrkResult) -> str:
    ratio = synchronous.requests_per_second / asynchronous.requests_per_second
    return (
        f"| `{label}` | {asynchronous.requests_per_second:,.0f} | "
        f"{synchronous.requests_per_second:,.0f} | {ratio:.2f}x | "
        f"{asynchronous.p50_ms:.1f} / {asynchronous.p99_ms:.1f} | "
        f"{synchronous.p50_ms:.1f} / {synchronous.p99_ms:.1f} | {asynchronous.non_2xx} |"
    )


NOTES = [
    "Design: async views run on one persistent event loop per gunicorn thread "
    "(`PeriodicFlask.async_to_sync`), and their blocking store and broker calls on one "
    "bounded pool per process (`run_blocking`), one hop per request; `/queues` asks about "
    "every queue at once. `POST /run` is group-committed: the run-now requests in flight in "
    "one process join one batch (`scheduling/operations/batcher.py`), which "
    "claims every ledger row in one store transaction, publishes every message in one "
    "pipelined confirmed batch and marks them dispatched in one transaction, instead of two "
    "serialised write transactions per request; SQLite commits with `synchronous = NORMAL` "
    "(no log sync per commit; see the store notes in the README). A batch has no thread of its "
    "own: the request that finds none running leads it on its own server thread (after a 1 ms "
    "linger for company) and the requests arriving meanwhile wait to form the next one, led "
    "by the first of them; the async view joins it from its loop's thread, the sync twin "
    f"from its own. With {THREADS} server threads per worker a batch "
    f"holds at most {THREADS} runs. The batch also writes each run's `run_now` history row in "
    "its mark transaction. `GET /schedules/{name}` is one SELECT (entry, newest and last "
    "dispatched run, fault) built once at import.",
    "",
]


def section(rows: list[str], command: str, connections: int, dialect: str) -> str:
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    return "\n".join(
        [
            f"{DOCS_HEADING} ({dialect} store)",
            "",
            f"gunicorn {WORKERS} workers x {THREADS} threads (gthread), wrk 2 threads x "
            f"{connections} connections, {cores} cores shared with wrk and the broker "
            f"(load average {load:.1f} when written), {dialect} store. Each async endpoint next "
            "to its sync twin in the same run, passes alternating, median pass shown (same code "
            "without the event loop; `/queues` asks the broker queue by queue instead of "
            "concurrently). *sync/async* above 1.0 means the async view is slower by that "
            "factor; the target is at most 1.3x. Every 202 of `POST /run` was checked against "
            "the queue depth (a confirmed message each).",
            "",
            "| endpoint | async req/s | sync req/s | sync/async | async p50 / p99 ms | "
            "sync p50 / p99 ms | async non-2xx |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Command: `{command}` (or `nox -s bench`); measured "
            f"{datetime.now(UTC).strftime('%Y-%m-%d')}.",
            "",
            *NOTES,
        ]
    )


def write_section(path: Path, text: str) -> None:
    """Replace this store's `## HTTP API` section of `path` (other sections are left alone)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    heading = text.splitlines()[0]
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: text + "\n", existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help=f"a throwaway PostgreSQL database on ${POSTGRES_ENV} (default: the local server)",
    )
    parser.add_argument("--write", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--only", default=None, help="endpoints whose label contains this")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    database_url = options.database_url
    tag = new_tag()
    if options.postgresql:
        postgres_create(tag)
        database_url = postgres_url(tag)
    try:
        rows, command, dialect = run(
            options.seconds, options.connections, options.rounds, database_url, options.only
        )
    finally:
        if options.postgresql:
            postgres_drop(tag)
    if options.postgresql:
        command += " --postgresql"
    text = section(rows, command, options.connections, dialect)
    print(text)
    if not options.no_write and options.only is None:
        write_section(options.write, text)


if __name__ == "__main__":
    main()
