"""Run every workload and write docs/benchmarks.md and docs/benchmarks.png.

``nox -s bench`` (or ``python -m benchmarks.run``). The broker is a throwaway local RabbitMQ node
(``PERIODIC_BENCH_BROKER_URL`` to use another, never a shared production broker); RedBeat needs
Redis on 127.0.0.1:6379 (database 15, keys under a unique prefix, deleted afterwards); Periodic's
and django-celery-beat's PostgreSQL runs need a server that lets the benchmark create databases
(``PERIODIC_BENCH_POSTGRES_URL``, default the local one). ``--quick`` shrinks every size and the
idle window for a smoke run. The load average is recorded with every figure: on a shared machine
absolute figures drift, ratios within one run much less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import write_report
from benchmarks.workloads import w0_ceilings, w1_burst, w2_idle, w3_propagation
from project.devtools.localbroker import LocalRabbitNode

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def bench_broker(workdir: Path) -> Iterator[str]:
    url = os.environ.get("PERIODIC_BENCH_BROKER_URL")
    if url:
        yield url
        return
    with LocalRabbitNode(workdir / "rabbitmq") as node:
        yield node.url


def rabbitmq_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    quick = args.quick
    burst = 1000 if quick else 10_000
    sizes = [1000, 10_000] if quick else [1000, 10_000, 100_000]
    stock_cap = 20.0 if quick else 60.0
    window = 10.0 if quick else 60.0

    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "rabbitmq": rabbitmq_version(),
        "command": " ".join(["python -m benchmarks.run", *sys.argv[1:]]),
        "load_start": os.getloadavg(),
        "idle_window_s": window,
    }
    with tempfile.TemporaryDirectory(prefix="periodic-bench-") as tmp:
        workdir = Path(tmp)
        with bench_broker(workdir) as broker_url:
            print("W0 ceilings ...", flush=True)
            results["w0"] = w0_ceilings(broker_url, burst)
            print(json.dumps(results["w0"], indent=1), flush=True)
            results["w1"] = []
            contenders = ("periodic", "periodic-pg", "redbeat", "persistent", "sqlalchemy-beat")
            for key in (*contenders, "django-beat"):
                print(f"W1 burst {key} ...", flush=True)
                cap = 120.0 if key in ("periodic", "periodic-pg", "redbeat") else stock_cap
                row = {"key": key, **w1_burst(broker_url, workdir, key, burst, cap)}
                row["load1"] = os.getloadavg()[0]
                results["w1"].append(row)
                print(json.dumps(row), flush=True)
            results["w2"] = []
            plan = [(key, size) for key in (*contenders, "django-beat") for size in sizes]
            for key, size in plan:
                print(f"W2 idle {key} {size} ...", flush=True)
                row = {"key": key, **w2_idle(broker_url, workdir, key, size, window)}
                row["load1"] = os.getloadavg()[0]
                results["w2"].append(row)
                print(json.dumps(row), flush=True)
            results["w3"] = []
            for key in ("periodic", "periodic-pg", "django-beat"):
                for size in (0, sizes[-1]):
                    print(f"W3 propagation {key} {size} ...", flush=True)
                    # django-celery-beat takes seconds a sample (it polls every 5 s, then
                    # reloads every entry): fewer samples keep the run short.
                    samples = 8 if quick or key == "django-beat" else 50
                    row = w3_propagation(broker_url, workdir, size, samples, key)
                    row["load1"] = os.getloadavg()[0]
                    results["w3"].append(row)
                    shown = {k: v for k, v in row.items() if k != "latencies"}
                    print(json.dumps(shown), flush=True)
    results["load_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(results, indent=1))
    write_report(results, args.out)
    print(f"wrote {args.out / 'benchmarks.md'} and {args.out / 'benchmarks.png'}")


if __name__ == "__main__":
    main()
