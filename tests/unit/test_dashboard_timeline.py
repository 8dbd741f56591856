"""Timeline geometry: one cell per run in order, outcome colours (late included), hourly cells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduling.flask.dashboard.timeline import (
    DAY_WIDTH,
    STRIP_WIDTH,
    day_strip,
    outcome,
    runtime_bars,
    slot_strip,
)
from scheduling.store import RunRecord, RunState

SLOT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
LATE = timedelta(seconds=30)


def run(index: int, state: RunState, *, lag: float = 1.0, runtime: float | None = 1.0,
        manual: bool = False) -> RunRecord:  # fmt: skip
    scheduled = SLOT + timedelta(minutes=index)
    dispatched = scheduled + timedelta(seconds=lag)
    return RunRecord(
        id=index, entry="e", scheduled_for=scheduled, task_id=f"t{index}", state=state,
        manual=manual, queue="default", claimed_at=scheduled, dispatched_at=dispatched,
        started_at=dispatched, finished_at=dispatched, runtime=runtime, hostname="w",
        error_type=None, error_message=None, retries=0,
    )  # fmt: skip


def test_outcomes_and_lateness() -> None:
    assert outcome(run(0, RunState.SUCCEEDED), LATE) == "succeeded"
    assert outcome(run(0, RunState.SUCCEEDED, lag=31), LATE) == "late"
    assert outcome(run(0, RunState.SUCCEEDED, lag=31, manual=True), LATE) == "succeeded"
    assert outcome(run(0, RunState.FAILED, lag=31), LATE) == "failed"
    assert outcome(run(0, RunState.REVOKED), LATE) == "expired"
    assert outcome(run(0, RunState.STARTED), LATE) == "running"


def test_strip_orders_oldest_first_and_fills_the_width() -> None:
    runs = [run(2, RunState.MISSED), run(0, RunState.SUCCEEDED), run(1, RunState.FAILED)]
    cells = slot_strip(runs, LATE)

    assert [cell.outcome for cell in cells] == ["succeeded", "failed", "missed"]
    assert cells[0].x == 0
    assert cells[-1].x + cells[-1].width <= STRIP_WIDTH
    assert cells[-1].title == "2026-06-01 08:02:00 UTC: missed"
    assert slot_strip([], LATE) == []


def test_runtime_bars_scale_to_the_longest() -> None:
    bars, longest = runtime_bars(
        [run(0, RunState.SUCCEEDED, runtime=2.0), run(1, RunState.FAILED, runtime=1.0),
         run(2, RunState.MISSED, runtime=None)]
    )  # fmt: skip

    assert longest == 2.0
    assert [bar.outcome for bar in bars] == ["bar", "failed"]
    assert bars[0].height == 2 * bars[1].height


def test_day_strip_keeps_the_worst_outcome_per_hour() -> None:
    now = datetime(2026, 6, 2, 9, 30, tzinfo=UTC)
    counts = {
        "2026-06-02 09": {"succeeded": 50, "failed": 1},
        "2026-06-01 10": {"missed": 2, "skipped": 1},
        "2026-06-01 09": {"failed": 9},  # 24 h and more ago: outside the strip
    }
    cells = day_strip(counts, now)

    assert [cell.outcome for cell in cells] == ["missed", "failed"]
    assert cells[0].x == 0
    assert cells[1].x == DAY_WIDTH * 23 / 24
    assert "51 run(s)" in cells[1].title


def test_day_strip_shows_an_hour_of_late_successes_as_late() -> None:
    now = datetime(2026, 6, 2, 9, 30, tzinfo=UTC)
    cells = day_strip({"2026-06-02 09": {"succeeded": 5, "late": 2}}, now)
    assert [cell.outcome for cell in cells] == ["late"]
    assert "2 late" in cells[0].title
