"""The run report's counting and its text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduling.store import RunRecord, RunState
from scheduling.tasks.reporting import render_report, summarize_runs

END = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
START = END - timedelta(days=1)
LATE_AFTER = timedelta(seconds=30)


def run(
    entry: str,
    state: RunState,
    *,
    hour: int = 1,
    delay: float | None = 1.0,
    runtime: float | None = None,
    manual: bool = False,
    error: tuple[str, str] | None = None,
) -> RunRecord:
    scheduled = START + timedelta(hours=hour)
    started = None if delay is None else scheduled + timedelta(seconds=delay)
    return RunRecord(
        id=hour,
        entry=entry,
        scheduled_for=scheduled,
        task_id=f"{entry}-{hour}",
        state=state,
        manual=manual,
        queue="default",
        claimed_at=scheduled,
        dispatched_at=scheduled,
        started_at=started,
        finished_at=None,
        runtime=runtime,
        hostname="w@h",
        error_type=error[0] if error else None,
        error_message=error[1] if error else None,
        retries=0,
    )


def test_counts_per_entry_sorted_by_name() -> None:
    report = summarize_runs(
        [
            run("b", RunState.SUCCEEDED, runtime=2.0),
            run("b", RunState.SUCCEEDED, hour=2, runtime=7.5, delay=45),
            run("b", RunState.FAILED, hour=3, runtime=1.0, error=("KeyError", "'x'")),
            run("a", RunState.MISSED, delay=None),
            run("a", RunState.SKIPPED, hour=2, delay=None),
            run("a", RunState.EXPIRED, hour=3, delay=None),
            run("a", RunState.STARTED, hour=4),
            run("a", RunState.SUCCEEDED, hour=5, delay=600, manual=True),
        ],
        START,
        END,
        LATE_AFTER,
    )
    a, b = report.entries
    assert (a.entry, a.succeeded, a.missed, a.skipped, a.expired, a.unfinished, a.late) == (
        "a",
        1,
        1,
        1,
        1,
        1,
        0,
    )
    assert (b.entry, b.succeeded, b.failed, b.late, b.slowest) == ("b", 2, 1, 1, 7.5)
    assert report.count("total") == 8


def test_rendered_mail_names_counts_and_failures() -> None:
    report = summarize_runs(
        [
            run("nightly", RunState.SUCCEEDED, runtime=75.0),
            run("nightly", RunState.FAILED, hour=2, error=("TimeoutError", "db slow")),
            run("hourly", RunState.MISSED, delay=None),
        ],
        START,
        END,
        LATE_AFTER,
    )
    subject, body = render_report(report)
    assert subject == "Periodic: 3 runs, 1 failed, 1 missed in the last 1d"
    assert "from 2026-03-01 08:00 UTC to 2026-03-02 08:00 UTC" in body
    rows = {line.split()[0]: line.split()[1:] for line in body.splitlines()[3:7]}
    assert rows["nightly"] == ["1", "1", "0", "0", "0", "0", "1m15s"]
    assert rows["hourly"] == ["0", "0", "0", "1", "0", "0", "-"]
    assert "nightly  2026-03-01T10:00:00Z  TimeoutError: db slow" in body


def test_an_empty_period_says_so() -> None:
    subject, body = render_report(summarize_runs([], START, END, LATE_AFTER))
    assert subject.startswith("Periodic: 0 runs")
    assert "No runs in this period." in body
