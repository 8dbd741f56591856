"""What the dashboard pages show, read from the store in one blocking call per page.

Views run these through `run_blocking`; they take the store and settings as arguments and know
nothing about Flask, so they are tested against a real store without a browser. Entry rows reuse
`scheduling.operations.entries.entry_view`, the same view the API answers with, so both always
agree on what
"late" means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduling.config.compiler import compile_entry
from scheduling.config.settings import Settings
from scheduling.errors import EntryNotFound
from scheduling.flask.dashboard.timeline import Cell, day_strip, runtime_bars, slot_strip
from scheduling.operations.entries import EntryView, entry_view, entry_views
from scheduling.store import BeatStatus, HistoryRecord, LeaseRecord, RunRecord, RunState, Store
from scheduling.timing.preview import preview_fire_times

__all__ = [
    "BeatPanel",
    "EntryPage",
    "Overview",
    "beat_panel",
    "load_entry_page",
    "load_overview",
]

PAGE_SIZE = 100
RECENT_RUNS = 15
ENTRY_RUNS = 50
PREVIEW_COUNT = 5
ENTRY_HISTORY = 20
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class BeatPanel:
    """Who leads, how far behind it is, and — when something is wrong — what to do about it."""

    scheduler: str
    lease: LeaseRecord | None
    leader: BeatStatus | None
    lease_live: bool
    lag: float | None
    lag_alert: float
    standbys: list[BeatStatus] = field(default_factory=list)
    problem: str | None = None


@dataclass(frozen=True)
class Overview:
    entries: list[EntryView]
    next_cursor: str | None
    total_entries: int
    configured_entries: int
    late_entries: int
    paused_entries: int
    recent_runs: list[RunRecord]
    beat: BeatPanel
    now: datetime
    day_strips: dict[str, list[Cell]] = field(default_factory=dict)
    """Per entry on the page: 24 hourly cells of the last day, by worst outcome."""


@dataclass(frozen=True)
class EntryPage:
    view: EntryView
    runs: list[RunRecord]
    fire_times: list[datetime]
    failures: int
    history: list[HistoryRecord] = field(default_factory=list)
    strip: list[Cell] = field(default_factory=list)
    """The runs above, oldest first, one cell each, coloured by outcome."""
    runtime: list[Cell] = field(default_factory=list)
    longest_runtime: float = 0.0


def beat_panel(
    settings: Settings, lease: LeaseRecord | None, beats: list[BeatStatus], now: datetime
) -> BeatPanel:
    """Judge the beats as an operator would: is one leading, and is it keeping up?"""
    lag_alert = settings.beat.lag_alert.total_seconds()
    if settings.beat.scheduler == "static":
        return BeatPanel(
            "static",
            None,
            None,
            False,
            None,
            lag_alert,
            problem=(
                "Beat runs the static scheduler: it ignores pause and resume and keeps no "
                'lease. Set [beat] scheduler = "database" to steer it from here.'
            ),
        )
    live = lease is not None and lease.live(now)
    leader = next((b for b in beats if lease is not None and b.beat_id == lease.holder), None)
    # Each beat's lease thread reports every lease_ttl / 3 with the end of its last tick (ticks
    # come at least every sync_interval / 4): stale means ~9 reports missed, however slow the loop.
    stale_after = (3 * settings.beat.lease_ttl + settings.beat.sync_interval).total_seconds()
    standbys = [
        b for b in beats if b is not leader and (now - b.last_tick).total_seconds() <= stale_after
    ]
    lag = leader.lag if leader is not None else None
    problem = None
    if not live:
        problem = (
            "No beat holds the lease, so nothing is dispatched. Start one: "
            "celery -A project.worker:celery_app beat"
        )
    elif lag is not None and lag > lag_alert:
        problem = (
            f"The leader dispatches {lag:.1f} s late (alert above {lag_alert:.0f} s): "
            "check the broker and the database, or the beat's host load."
        )
    return BeatPanel("database", lease, leader, live, lag, lag_alert, standbys, problem)


def load_overview(
    store: Store, settings: Settings, *, after: str | None, now: datetime, limit: int = PAGE_SIZE
) -> Overview:
    records = store.list_entries(after=after, limit=limit + 1)
    page, more = records[:limit], len(records) > limit
    views = entry_views(store, settings, page, now)
    counts = store.hourly_run_counts(
        [record.name for record in page], now - DAY, late_after=settings.beat.lag_alert
    )
    return Overview(
        entries=views,
        next_cursor=page[-1].name if more and page else None,
        total_entries=store.count_entries(),
        configured_entries=len(settings.schedule),
        late_entries=sum(1 for view in views if view.late),
        paused_entries=sum(1 for view in views if view.record.paused),
        recent_runs=store.recent_runs(limit=RECENT_RUNS),
        beat=beat_panel(settings, store.current_lease(), store.beats(), now),
        now=now,
        day_strips={view.name: day_strip(counts.get(view.name, {}), now) for view in views},
    )


def load_entry_page(store: Store, settings: Settings, name: str, now: datetime) -> EntryPage:
    """One entry with its recent runs (errors included) and next fire times; EntryNotFound."""
    record = store.get_entry(name)
    if record is None:
        raise EntryNotFound(f"no schedule entry named {name!r}")
    view = entry_view(store, settings, record, now)
    try:
        timetable = compile_entry(name, record.definition, settings).timetable
        fire_times = preview_fire_times(timetable, now, PREVIEW_COUNT) if record.active else []
    except (KeyError, ValueError, OverflowError):  # PreviewTooCostly is a ValueError
        fire_times = []
    runs = store.runs_for_entry(name, limit=ENTRY_RUNS)
    failures = sum(1 for run in runs if run.state in {RunState.FAILED, RunState.EXPIRED})
    history = store.entry_history(name, limit=ENTRY_HISTORY)
    bars, longest = runtime_bars(runs)
    strip = slot_strip(runs, settings.beat.lag_alert)
    return EntryPage(view, runs, fire_times, failures, history, strip, bars, longest)
