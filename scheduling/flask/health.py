"""Liveness, readiness and Prometheus metrics; all three answer without a token.

* ``/healthz``: the process serves requests.
* ``/readyz``: the store and the broker answer, the beat leader's dispatch lag is under
  ``beat.lag_alert``, and no queue with entries routed to it lacks a consumer (the classic "beat
  runs but no worker was started"). The checks run concurrently, each within `CHECK_TIMEOUT`;
  503 names what failed.
* ``/metrics``: read from the ledger, the store and the broker at scrape time into a
  `CollectorRegistry` of the app's own (see `scheduling.flask.metrics`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, json, request
from flask.typing import ResponseReturnValue
from prometheus_client.exposition import choose_encoder

from scheduling.flask.api.problems import PROBLEM_JSON
from scheduling.flask.api.queues import broker_statuses
from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking
from scheduling.flask.metrics import metrics_registry
from scheduling.flask.services import Services, current_services
from scheduling.operations.entries import queue_views

__all__ = ["CHECK_TIMEOUT", "health", "readiness"]

health = AsyncBlueprint("periodic_health", __name__)
CHECK_TIMEOUT = 2.0
"""Seconds each readiness check may take; a hung dependency fails its check, not the probe."""


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _bounded(name: str, check: Awaitable[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    try:
        return name, await asyncio.wait_for(check, CHECK_TIMEOUT)
    except TimeoutError:
        return name, {"ok": False, "detail": f"no answer within {CHECK_TIMEOUT}s"}
    except Exception as error:
        return name, {"ok": False, "detail": f"{type(error).__name__}: {error}"}


async def _store_check(services: Services) -> dict[str, Any]:
    seq = await run_blocking(lambda: services.store.change_seq())
    return {"ok": True, "detail": f"change sequence {seq}"}


async def _broker_check(services: Services) -> dict[str, Any]:
    statuses = await broker_statuses(services)
    return {"ok": True, "detail": f"{len(statuses)} queues answer", "statuses": statuses}


async def _routing_check(services: Services) -> dict[str, Any]:
    counts = await run_blocking(services.routed.counts, services.store, services.settings)
    return {"ok": True, "counts": counts}


def _queue_check(
    services: Services, broker: dict[str, Any], routing: dict[str, Any]
) -> dict[str, Any]:
    if not (broker["ok"] and routing["ok"]):
        return {"ok": False, "detail": "unknown: the broker or the store did not answer"}
    views = queue_views(services.settings, broker.pop("statuses"), routing["counts"])
    unattended = [view.name for view in views if view.unattended]
    missing = [view.name for view in views if not view.exists]
    parts = []
    if unattended:
        parts.append(f"entries are routed to {', '.join(unattended)} but no worker consumes it")
    if missing:
        parts.append(f"not declared on the broker: {', '.join(missing)}")
    return {
        "ok": not parts,
        "unattended": unattended,
        "missing": missing,
        "detail": "; ".join(parts) or "every queue with entries has a consumer",
    }


async def _beat_check(services: Services) -> dict[str, Any]:
    settings = services.settings
    if settings.beat.scheduler != "database":
        return {"ok": True, "detail": "static scheduler: no lease to check"}
    store = services.store
    lease, beats = await asyncio.gather(
        run_blocking(store.current_lease), run_blocking(store.beats)
    )
    now = datetime.now(UTC)
    limit = settings.beat.lag_alert.total_seconds()
    if lease is None or not lease.live(now):
        return {"ok": False, "detail": "no beat holds the lease"}
    leader = next((beat for beat in beats if beat.beat_id == lease.holder), None)
    lag = leader.lag if leader else None
    if lag is not None and lag > limit:
        detail = f"dispatch lag {lag:.1f}s is over beat.lag_alert ({limit:g}s)"
        return {"ok": False, "leader": lease.holder, "lag": lag, "detail": detail}
    return {"ok": True, "leader": lease.holder, "lag": lag, "detail": "leader dispatching"}


async def _entries_check(services: Services) -> dict[str, Any]:
    """Entries beat holds in error: the service is degraded (still ready), naming them."""
    faults = await run_blocking(services.store.entry_faults)
    if not faults:
        return {"ok": True, "degraded": False, "detail": "no entry in error"}
    shown = [f"{name} ({fault.message})" for name, fault in list(faults.items())[:5]]
    more = f" and {len(faults) - 5} more" if len(faults) > 5 else ""
    return {
        "ok": True,
        "degraded": True,
        "entries": sorted(faults),
        "detail": f"{len(faults)} entries in error: " + "; ".join(shown) + more,
    }


async def readiness(services: Services) -> dict[str, Any]:
    """Every check's result, the names of the failed ones and of the degraded ones.

    A failed check makes the process not ready (503); entries in error only degrade it (200,
    ``"status": "degraded"``): one bad entry must not take the whole service out of rotation.
    """
    results = dict(
        await asyncio.gather(
            _bounded("store", _store_check(services)),
            _bounded("broker", _broker_check(services)),
            _bounded("routing", _routing_check(services)),
            _bounded("beat", _beat_check(services)),
            _bounded("entries", _entries_check(services)),
        )
    )
    checks = {
        "store": results["store"],
        "broker": results["broker"],
        "beat": results["beat"],
        "queues": _queue_check(services, results["broker"], results["routing"]),
        "entries": results["entries"],
    }
    failed = [name for name, check in checks.items() if not check["ok"]]
    degraded = [name for name, check in checks.items() if check.get("degraded")]
    status = "not ready" if failed else "degraded" if degraded else "ready"
    return {"status": status, "failed": failed, "degraded": degraded, "checks": checks}


@health.get("/readyz")
async def readyz() -> ResponseReturnValue:
    """200 with every check, or a 503 problem document (like every other error) that keeps the
    checks as extension members, so a probe and a person both see what failed."""
    report = await readiness(current_services())
    if not report["failed"]:
        return report, 200
    problem = {
        **report,
        "type": "about:blank",
        "title": "Not ready",
        "status": 503,
        "detail": "; ".join(
            f"{name}: {report['checks'][name].get('detail', 'failed')}" for name in report["failed"]
        ),
    }
    return Response(json.dumps(problem), status=503, mimetype=PROBLEM_JSON)


@health.get("/metrics")
async def metrics() -> Response:
    """Prometheus text, or OpenMetrics when the scraper's Accept header asks for it."""
    registry = metrics_registry(current_app.extensions, current_services())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    payload = await run_blocking(encode, registry)
    return Response(payload, content_type=content_type)
