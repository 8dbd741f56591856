"""Run timelines as SVG geometry: a strip of the last runs, a runtime chart, a 24-hour strip.

Pure functions from run records (or hourly counts) to rectangles in a fixed viewBox; the
templates draw them as inline SVG, coloured by CSS classes, so they need no script, no CDN and
no inline style (the dashboard's CSP allows none), and scale to a phone's width.

Outcomes, worst first: failed, expired (and revoked), missed, late (dispatched more than the
lateness threshold after its slot, then succeeded), skipped, running (pending, dispatched,
started, retry), succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduling.store import RunRecord, RunState
from scheduling.store.timelines import hour_key

__all__ = [
    "STRIP_HEIGHT",
    "STRIP_WIDTH",
    "Cell",
    "day_strip",
    "outcome",
    "runtime_bars",
    "slot_strip",
]

STRIP_WIDTH = 600
STRIP_HEIGHT = 24
CHART_HEIGHT = 80
DAY_WIDTH = 240
DAY_HEIGHT = 14
_GAP = 1.0

_ORDER = ("failed", "expired", "missed", "late", "skipped", "running", "succeeded")
_BY_STATE = {
    RunState.FAILED: "failed",
    RunState.EXPIRED: "expired",
    RunState.REVOKED: "expired",
    RunState.MISSED: "missed",
    RunState.SKIPPED: "skipped",
    RunState.PENDING: "running",
    RunState.DISPATCHED: "running",
    RunState.STARTED: "running",
    RunState.RETRY: "running",
    RunState.SUCCEEDED: "succeeded",
}


@dataclass(frozen=True)
class Cell:
    """One rectangle: position and size in the viewBox, its outcome class, and its title."""

    x: float
    y: float
    width: float
    height: float
    outcome: str
    title: str


def outcome(run: RunRecord, late_after: timedelta) -> str:
    """The run's colour: its state, except that a late success reads "late"."""
    kind = _BY_STATE.get(run.state, "running")
    dispatched = run.dispatched_at
    late = dispatched is not None and dispatched - run.scheduled_for > late_after
    return "late" if kind == "succeeded" and late and not run.manual else kind


def slot_strip(runs: Sequence[RunRecord], late_after: timedelta) -> list[Cell]:
    """The runs oldest to newest, one equal cell each, across the strip's width."""
    ordered = sorted(runs, key=lambda run: (run.scheduled_for, run.id))
    if not ordered:
        return []
    width = STRIP_WIDTH / len(ordered)
    return [
        Cell(
            x=index * width,
            y=0,
            width=max(width - _GAP, 0.5),
            height=STRIP_HEIGHT,
            outcome=outcome(run, late_after),
            title=f"{_utc(run.scheduled_for)}: {outcome(run, late_after)}"
            + (" (manual)" if run.manual else ""),
        )
        for index, run in enumerate(ordered)
    ]


def runtime_bars(runs: Sequence[RunRecord]) -> tuple[list[Cell], float]:
    """One bar per run, height by runtime (the longest fills the chart); and that longest."""
    ordered = sorted(runs, key=lambda run: (run.scheduled_for, run.id))
    longest = max((run.runtime or 0.0 for run in ordered), default=0.0)
    if not ordered or longest <= 0:
        return [], 0.0
    width = STRIP_WIDTH / len(ordered)
    bars = []
    for index, run in enumerate(ordered):
        if run.runtime is None:
            continue
        height = max(run.runtime / longest * CHART_HEIGHT, 1.0)
        bars.append(
            Cell(
                x=index * width,
                y=CHART_HEIGHT - height,
                width=max(width - _GAP, 0.5),
                height=height,
                outcome="failed" if run.state is RunState.FAILED else "bar",
                title=f"{_utc(run.scheduled_for)}: {run.runtime:.2f} s",
            )
        )
    return bars, longest


def day_strip(counts: Mapping[str, Mapping[str, int]], now: datetime) -> list[Cell]:
    """24 hourly cells ending with the current hour, each the worst outcome of its runs."""
    width = DAY_WIDTH / 24
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    cells = []
    for index in range(24):
        hour = first_hour + timedelta(hours=index)
        by_state = counts.get(hour_key(hour), {})
        if not by_state:
            continue
        kinds = {_kind(state) for state in by_state}
        worst = min(kinds, key=_ORDER.index)
        total = sum(by_state.values())
        summary = ", ".join(f"{count} {state}" for state, count in sorted(by_state.items()))
        cells.append(
            Cell(
                x=index * width,
                y=0,
                width=width - _GAP,
                height=DAY_HEIGHT,
                outcome=worst,
                title=f"{hour_key(hour)}:00 UTC: {total} run(s): {summary}",
            )
        )
    return cells


def _kind(value: str) -> str:
    if value == "late":  # counted apart by the store: a success dispatched past the threshold
        return "late"
    try:
        return _BY_STATE.get(RunState(value), "running")
    except ValueError:
        return "running"


def _utc(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S UTC")
