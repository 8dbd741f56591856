"""Prometheus metrics of the web process, read from the ledger, the store and the broker.

The web process dispatches nothing itself, so its metrics describe the system as the store and
the broker record it, at scrape time: runs of the last `WINDOW` by entry, queue and state
(dispatches, missed slots, outcomes), dispatch lag and runtime as gauge histograms over that
window (a sliding window may shrink, which a counter must never do), late entries, queue depth
and consumers, and the beat leader. Each app has its own `CollectorRegistry`, so tests and
several apps in one process never share series; a snapshot is reused for `CACHE_SECONDS` so
that several scrapers do not multiply the cost.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduling.broker.topology import QueueStatus
from scheduling.errors import StoreError
from scheduling.operations.entries import BrokerUnavailable, late_grace, queue_views
from scheduling.store import BeatStatus, LeaseRecord, RunRecord, RunState

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from scheduling.flask.services import Services

__all__ = ["CACHE_SECONDS", "WINDOW", "PeriodicCollector", "metrics_registry"]

WINDOW = timedelta(minutes=15)
CACHE_SECONDS = 5.0
ENTRY_PAGE = 1000
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
RUNTIME_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_REGISTRY_KEY = "periodic.metrics"


def metrics_registry(extensions: MutableMapping[str, Any], services: Services) -> CollectorRegistry:
    """The app's own registry (created on first scrape)."""
    registry = extensions.get(_REGISTRY_KEY)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PeriodicCollector(services))
        extensions[_REGISTRY_KEY] = registry
    assert isinstance(registry, CollectorRegistry)
    return registry


@dataclass
class Snapshot:
    store_up: bool = False
    broker_up: bool = False
    runs: list[RunRecord] = field(default_factory=list)
    entries: Counter[str] = field(default_factory=Counter)
    late: int = 0
    lease: LeaseRecord | None = None
    beats: list[BeatStatus] = field(default_factory=list)
    statuses: dict[str, QueueStatus] = field(default_factory=dict)
    routed: dict[str, int] = field(default_factory=dict)


class PeriodicCollector(Collector):
    def __init__(self, services: Services) -> None:
        self._services = services
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > CACHE_SECONDS:
                self._cached = (time.monotonic(), self._snapshot(datetime.now(UTC)))
            snapshot = self._cached[1]
        return list(_families(self._services, snapshot, datetime.now(UTC)))

    def _snapshot(self, now: datetime) -> Snapshot:
        services = self._services
        snapshot = Snapshot()
        try:
            store = services.store
            snapshot.runs = store.runs_between(now - WINDOW, now + timedelta(seconds=1))
            _count_entries(snapshot, services, now)
            snapshot.lease = store.current_lease()
            snapshot.beats = store.beats()
            snapshot.routed = services.routed.counts(store, services.settings)
            snapshot.store_up = True
        except StoreError:
            pass
        try:
            for name in services.settings.queues:
                snapshot.statuses[name] = services.broker.queue_status(name)
            snapshot.broker_up = True
        except BrokerUnavailable:
            pass
        return snapshot


def _count_entries(snapshot: Snapshot, services: Services, now: datetime) -> None:
    threshold = now - late_grace(services.settings)
    after = None
    while True:
        page = services.store.list_entries(after=after, limit=ENTRY_PAGE)
        for record in page:
            if not record.definition.enabled:
                snapshot.entries["disabled"] += 1
            elif record.paused:
                snapshot.entries["paused"] += 1
            else:
                snapshot.entries["active"] += 1
                if record.next_run_at is not None and record.next_run_at < threshold:
                    snapshot.late += 1
        if len(page) < ENTRY_PAGE:
            return
        after = page[-1].name


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _buckets(values: list[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    result = [(repr(bound), float(sum(1 for v in values if v <= bound))) for bound in bounds]
    return [*result, ("+Inf", float(len(values)))]


def _families(services: Services, snapshot: Snapshot, now: datetime) -> Iterator[Metric]:
    window = f"slots of the last {int(WINDOW.total_seconds() // 60)} minutes"
    up = _gauge("periodic_up", "1 when the component answered this scrape.", ["component"])
    up.add_metric(["store"], float(snapshot.store_up))
    up.add_metric(["broker"], float(snapshot.broker_up))
    yield up

    if snapshot.store_up:
        yield from _ledger_families(snapshot, window)
        yield from _beat_families(snapshot, now)
    if snapshot.broker_up:
        views = queue_views(services.settings, snapshot.statuses, snapshot.routed)
        families = {
            "messages": _gauge("periodic_queue_messages", "Messages ready.", ["queue"]),
            "consumers": _gauge("periodic_queue_consumers", "Consumers attached.", ["queue"]),
            "routed_entries": _gauge(
                "periodic_queue_routed_entries", "Active entries routed here.", ["queue"]
            ),
            "unattended": _gauge(
                "periodic_queue_unattended", "1: entries routed here, no consumer.", ["queue"]
            ),
        }
        for view in views:
            families["messages"].add_metric([view.name], view.messages)
            families["consumers"].add_metric([view.name], view.consumers)
            families["routed_entries"].add_metric([view.name], view.routed_entries)
            families["unattended"].add_metric([view.name], float(view.unattended))
        yield from families.values()


def _ledger_families(snapshot: Snapshot, window: str) -> Iterator[Metric]:
    entries = _gauge("periodic_entries", "Schedule entries by state.", ["state"])
    for state in ("active", "paused", "disabled"):
        entries.add_metric([state], snapshot.entries[state])
    yield entries
    late = _gauge("periodic_late_entries", "Active entries whose next run is overdue.")
    late.add_metric([], snapshot.late)
    yield late

    outcomes: Counter[tuple[str, str, str]] = Counter()
    dispatches: Counter[tuple[str, str]] = Counter()
    missed: Counter[str] = Counter()
    lags: defaultdict[str, list[float]] = defaultdict(list)
    runtimes: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    for run in snapshot.runs:
        queue = run.queue or ""
        outcomes[(run.entry, queue, str(run.state))] += 1
        if run.state == RunState.MISSED:
            missed[run.entry] += 1
        if run.dispatched_at is not None:
            dispatches[(run.entry, queue)] += 1
            if not run.manual:
                lags[queue].append(max((run.dispatched_at - run.scheduled_for).total_seconds(), 0))
        if run.runtime is not None:
            runtimes[(run.entry, queue)].append(run.runtime)

    runs = _gauge("periodic_runs", f"Runs by state, {window}.", ["entry", "queue", "state"])
    for (entry, queue, state), count in sorted(outcomes.items()):
        runs.add_metric([entry, queue, state], count)
    yield runs
    sent = _gauge("periodic_dispatches", f"Confirmed dispatches, {window}.", ["entry", "queue"])
    for (entry, queue), count in sorted(dispatches.items()):
        sent.add_metric([entry, queue], count)
    yield sent
    lost = _gauge("periodic_missed_slots", f"Slots recorded as missed, {window}.", ["entry"])
    for entry, count in sorted(missed.items()):
        lost.add_metric([entry], count)
    yield lost
    lag = GaugeHistogramMetricFamily(
        "periodic_dispatch_lag_seconds",
        f"Slot time to confirmed dispatch, {window}.",
        labels=["queue"],
    )
    for queue, values in sorted(lags.items()):
        lag.add_metric([queue], _buckets(values, LAG_BUCKETS), sum(values))
    yield lag
    runtime = GaugeHistogramMetricFamily(
        "periodic_run_runtime_seconds", f"Run runtimes, {window}.", labels=["entry", "queue"]
    )
    for (entry, queue), values in sorted(runtimes.items()):
        runtime.add_metric([entry, queue], _buckets(values, RUNTIME_BUCKETS), sum(values))
    yield runtime


def _beat_families(snapshot: Snapshot, now: datetime) -> Iterator[Metric]:
    lease = snapshot.lease
    live = lease is not None and lease.expires_at > now
    leader = _gauge("periodic_beat_leader", "1 for the beat holding a live lease.", ["holder"])
    if lease is not None and live:
        leader.add_metric([lease.holder], 1)
    yield leader
    token = _gauge("periodic_beat_lease_token", "Fencing token of the current lease.")
    remaining = _gauge("periodic_beat_lease_seconds_left", "Until the lease expires (<0: lost).")
    if lease is not None:
        token.add_metric([], lease.token)
        remaining.add_metric([], (lease.expires_at - now).total_seconds())
    yield token
    yield remaining
    lag = _gauge("periodic_beat_lag_seconds", "The leader's dispatch lag in its last tick.")
    holder = next((b for b in snapshot.beats if lease and b.beat_id == lease.holder), None)
    if live and holder is not None and holder.lag is not None:
        lag.add_metric([], holder.lag)
    yield lag
