"""Prometheus metrics of the web process, read from the ledger, the store and the broker.

The web process dispatches nothing itself: beat and workers write every event into the run
ledger, and each scrape reads it back. That gives every web process (gunicorn workers included)
the same numbers, whichever one the scrape reaches.

* Counters (`_total`) and histograms count ledger events since 00:00 UTC of the current day:
  runs by outcome, confirmed dispatches, missed and skipped slots, run duration, dispatch lag.
  A finished run never changes state and a dispatch time is written once, so within the day
  they only grow; at midnight they start again from zero, which Prometheus treats as a counter
  reset (``rate()`` and ``increase()`` handle it; ``_created`` carries the start). Counting
  from a day rather than from the whole ledger keeps a scrape's cost to one day of runs and
  keeps the counters monotonic while `purge_runs` deletes old rows (retention must stay above
  one day, as the shipped 30 days is). The sums are computed by the database
  (`Store.ledger_tallies`).
* Gauges describe states only: entries by state, late entries, queue depth and consumers,
  the beat leader (by host name, stable across restarts) and its lease and lag.
* ``[metrics].entry_labels = false`` drops the ``entry`` label everywhere (series per queue).

Each app has its own `CollectorRegistry` (with ``process_*`` and the HTTP request metrics of
`scheduling.flask.request_metrics`), so tests and several apps in one process never share
series; a snapshot is reused for `CACHE_SECONDS` so that several scrapers do not multiply the
cost.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from scheduling.broker.topology import QueueStatus
from scheduling.errors import StoreError
from scheduling.operations.entries import BrokerUnavailable, late_grace, queue_views
from scheduling.store import (
    FINISHED_STATES,
    LEDGER_ONLY_STATES,
    BeatStatus,
    Histogram,
    LeaseRecord,
    RunState,
    Tallies,
)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from scheduling.flask.services import Services

__all__ = [
    "CACHE_SECONDS",
    "DURATION_BUCKETS",
    "LAG_BUCKETS",
    "PeriodicCollector",
    "counting_epoch",
    "metrics_registry",
]

CACHE_SECONDS = 5.0
ENTRY_PAGE = 1000
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
DURATION_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
REGISTRY_KEY = "periodic.metrics"
_OUTCOMES = sorted(state.value for state in FINISHED_STATES - LEDGER_ONLY_STATES)


def metrics_registry(extensions: MutableMapping[str, Any], services: Services) -> CollectorRegistry:
    """The app's own registry: Periodic's collector and ``process_*`` (created on first use)."""
    registry = extensions.get(REGISTRY_KEY)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PeriodicCollector(services))
        ProcessCollector(registry=registry)
        extensions[REGISTRY_KEY] = registry
    assert isinstance(registry, CollectorRegistry)
    return registry


def counting_epoch(now: datetime) -> datetime:
    """Where today's counters start: 00:00 UTC."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Snapshot:
    store_up: bool = False
    broker_up: bool = False
    epoch: datetime = field(default_factory=lambda: counting_epoch(datetime.now(UTC)))
    tallies: Tallies = field(default_factory=Tallies)
    entries: Counter[str] = field(default_factory=Counter)
    overdue: dict[str, float] = field(default_factory=dict)
    lease: LeaseRecord | None = None
    beats: list[BeatStatus] = field(default_factory=list)
    statuses: dict[str, QueueStatus] = field(default_factory=dict)
    routed: dict[str, int] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)


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
        snapshot = Snapshot(epoch=counting_epoch(now))
        try:
            store = services.store
            snapshot.tallies = store.ledger_tallies(
                snapshot.epoch,
                per_entry=services.settings.metrics.entry_labels,
                duration_bounds=DURATION_BUCKETS,
                lag_bounds=LAG_BUCKETS,
            )
            _count_entries(snapshot, services, now)
            snapshot.lease = store.current_lease()
            snapshot.beats = store.beats()
            snapshot.routed = services.routed.counts(store, services.settings)
            snapshot.faults = sorted(store.entry_faults())
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
                    snapshot.overdue[record.name] = (now - record.next_run_at).total_seconds()
        if len(page) < ENTRY_PAGE:
            return
        after = page[-1].name


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _buckets(histogram: Histogram, bounds: Sequence[float]) -> list[tuple[str, float]]:
    pairs = zip(bounds, histogram.buckets, strict=True)
    counts = [(repr(bound), float(count)) for bound, count in pairs]
    return [*counts, ("+Inf", float(histogram.count))]


def _families(services: Services, snapshot: Snapshot, now: datetime) -> Iterator[Metric]:
    up = _gauge("periodic_up", "1 when the component answered this scrape.", ["component"])
    up.add_metric(["store"], float(snapshot.store_up))
    up.add_metric(["broker"], float(snapshot.broker_up))
    yield up

    per_entry = services.settings.metrics.entry_labels
    if snapshot.store_up:
        yield from _entry_families(snapshot, per_entry)
        yield from _ledger_families(snapshot, per_entry)
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


def _entry_families(snapshot: Snapshot, per_entry: bool) -> Iterator[Metric]:
    entries = _gauge("periodic_entries", "Schedule entries by state.", ["state"])
    for state in ("active", "paused", "disabled"):
        entries.add_metric([state], snapshot.entries[state])
    yield entries
    late = _gauge("periodic_late_entries", "Active entries whose next run is overdue.")
    late.add_metric([], len(snapshot.overdue))
    yield late
    if per_entry:
        overdue = _gauge(
            "periodic_entry_overdue_seconds",
            "How far each late entry is behind its next run (only late entries appear).",
            ["entry"],
        )
        for name, seconds in sorted(snapshot.overdue.items()):
            overdue.add_metric([name], seconds)
        yield overdue
    errors = _gauge("periodic_entries_in_error", "Entries beat holds in error.")
    errors.add_metric([], len(snapshot.faults))
    yield errors
    if per_entry:
        in_error = _gauge("periodic_entry_error", "1 for each entry in error.", ["entry"])
        for name in snapshot.faults:
            in_error.add_metric([name], 1)
        yield in_error


def _ledger_families(snapshot: Snapshot, per_entry: bool) -> Iterator[Metric]:
    """Counters and histograms of ledger events since `snapshot.epoch` (see the module doc)."""
    tallies = snapshot.tallies
    created = snapshot.epoch.timestamp()
    labels = ["entry", "queue"] if per_entry else ["queue"]
    runs = CounterMetricFamily(
        "periodic_runs", "Runs finished, by outcome.", labels=[*labels, "outcome"]
    )
    missed: Counter[tuple[str, ...]] = Counter()
    skipped: Counter[tuple[str, ...]] = Counter()
    for key, states in sorted(tallies.finished.items()):
        for state, count in sorted(states.items()):
            if state == RunState.MISSED:
                missed[key[:-1]] += count
            elif state == RunState.SKIPPED:
                skipped[key[:-1]] += count
            elif state in _OUTCOMES:
                runs.add_metric([*key, state], count, created=created)
    yield runs
    sent = CounterMetricFamily(
        "periodic_dispatches", "Runs the broker confirmed (scheduled and manual).", labels=labels
    )
    for key, count in sorted(tallies.dispatches.items()):
        sent.add_metric(list(key), count, created=created)
    yield sent
    slot_labels = labels[:-1]
    for name, doc, counts in (
        ("periodic_missed_slots", "Slots recorded as missed, never dispatched.", missed),
        ("periodic_skipped_slots", "Slots skipped by overlap = skip.", skipped),
    ):
        family = CounterMetricFamily(name, doc, labels=slot_labels)
        for key, count in sorted(counts.items()):
            family.add_metric(list(key), count, created=created)
        if not slot_labels and not counts:
            family.add_metric([], 0, created=created)
        yield family
    lag = HistogramMetricFamily(
        "periodic_dispatch_lag_seconds",
        "Slot time to confirmed dispatch, scheduled runs only.",
        labels=["queue"],
    )
    for queue, histogram in sorted(tallies.lags.items()):
        lag.add_metric([queue], _buckets(histogram, LAG_BUCKETS), histogram.total)
    yield lag
    duration = HistogramMetricFamily(
        "periodic_run_duration_seconds", "Runtime of finished runs.", labels=labels
    )
    for key, histogram in sorted(tallies.durations.items()):
        duration.add_metric(list(key), _buckets(histogram, DURATION_BUCKETS), histogram.total)
    yield duration


def _beat_families(snapshot: Snapshot, now: datetime) -> Iterator[Metric]:
    lease = snapshot.lease
    live = lease is not None and lease.live(now)
    holder = next((b for b in snapshot.beats if lease and b.beat_id == lease.holder), None)
    leader = _gauge(
        "periodic_beat_leader", "1 for the host whose beat holds a live lease.", ["hostname"]
    )
    if live and holder is not None:
        leader.add_metric([holder.hostname], 1)
    yield leader
    token = _gauge("periodic_beat_lease_token", "Fencing token of the current lease.")
    remaining = _gauge("periodic_beat_lease_seconds_left", "Until the lease expires (<0: lost).")
    if lease is not None:
        token.add_metric([], lease.token)
        remaining.add_metric([], lease.seconds_left(now))
    yield token
    yield remaining
    lag = _gauge("periodic_beat_lag_seconds", "The leader's dispatch lag in its last tick.")
    if live and holder is not None and holder.lag is not None:
        lag.add_metric([], holder.lag)
    yield lag
