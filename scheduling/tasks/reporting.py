"""The run report: what happened to each entry's runs over a period, as a plain-text e-mail.

Counted per entry from the ledger (runs whose slot lies in the period): succeeded, failed,
expired, missed (never dispatched: outside misfire_grace or the catch-up policy), skipped
(overlap), still unfinished, late (started more than ``late_after`` after its slot — beat's
``lag_alert``), and the slowest runtime. Failures are listed with their error so the e-mail alone
says what to look at. Pure functions: the task wrapper fetches the runs and sends the mail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduling.config.durations import format_duration
from scheduling.store import RunRecord, RunState

__all__ = ["EntrySummary", "RunReport", "render_report", "summarize_runs"]

FAILURE_LINES = 20
ERROR_EXCERPT = 160


@dataclass
class EntrySummary:
    entry: str
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    missed: int = 0
    skipped: int = 0
    unfinished: int = 0
    late: int = 0
    slowest: float | None = None
    """Seconds, over finished runs that recorded a runtime."""
    failures: list[RunRecord] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            self.succeeded
            + self.failed
            + self.expired
            + self.missed
            + self.skipped
            + self.unfinished
        )

    def add(self, run: RunRecord, late_after: timedelta) -> None:
        if run.state is RunState.SUCCEEDED:
            self.succeeded += 1
        elif run.state in (RunState.FAILED, RunState.REVOKED):
            self.failed += 1
            self.failures.append(run)
        elif run.state is RunState.EXPIRED:
            self.expired += 1
        elif run.state is RunState.MISSED:
            self.missed += 1
        elif run.state is RunState.SKIPPED:
            self.skipped += 1
        else:
            self.unfinished += 1
        if (
            not run.manual
            and run.started_at is not None
            and run.started_at - run.scheduled_for > late_after
        ):
            self.late += 1
        if run.runtime is not None and (self.slowest is None or run.runtime > self.slowest):
            self.slowest = run.runtime


@dataclass(frozen=True)
class RunReport:
    start: datetime
    end: datetime
    entries: list[EntrySummary]

    def count(self, attribute: str) -> int:
        return sum(int(getattr(summary, attribute)) for summary in self.entries)


def summarize_runs(
    runs: Iterable[RunRecord], start: datetime, end: datetime, late_after: timedelta
) -> RunReport:
    """Group runs by entry (sorted by name)."""
    summaries: dict[str, EntrySummary] = {}
    for run in runs:
        summary = summaries.get(run.entry)
        if summary is None:
            summary = summaries[run.entry] = EntrySummary(run.entry)
        summary.add(run, late_after)
    return RunReport(start, end, [summaries[name] for name in sorted(summaries)])


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    return format_duration(timedelta(seconds=round(value)))


COLUMNS = ("succeeded", "failed", "expired", "missed", "skipped", "late")


def render_report(report: RunReport) -> tuple[str, str]:
    """(subject, body) of the e-mail."""
    period = format_duration(report.end - report.start)
    total = report.count("total")
    failed = report.count("failed") + report.count("expired")
    missed = report.count("missed")
    subject = f"Periodic: {total} runs, {failed} failed, {missed} missed in the last {period}"
    lines = [f"Runs scheduled from {_when(report.start)} to {_when(report.end)}.", ""]
    if not report.entries:
        lines.append("No runs in this period.")
        return subject, "\n".join(lines) + "\n"
    width = max(len("entry"), len("total"), *(len(s.entry) for s in report.entries))
    header = f"{'entry':<{width}}  " + "  ".join(f"{c:>9}" for c in COLUMNS) + f"  {'slowest':>9}"
    lines += [header, "-" * len(header)]
    for summary in report.entries:
        counts = "  ".join(f"{getattr(summary, c):>9}" for c in COLUMNS)
        lines.append(f"{summary.entry:<{width}}  {counts}  {_seconds(summary.slowest):>9}")
    totals = "  ".join(f"{report.count(c):>9}" for c in COLUMNS)
    slowest = max((s.slowest for s in report.entries if s.slowest is not None), default=None)
    lines += ["-" * len(header), f"{'total':<{width}}  {totals}  {_seconds(slowest):>9}"]
    unfinished = report.count("unfinished")
    if unfinished:
        lines += ["", f"{unfinished} run(s) had not finished when this report was made."]
    failures = sorted(
        (run for summary in report.entries for run in summary.failures),
        key=lambda run: run.scheduled_for,
        reverse=True,
    )
    if failures:
        lines += ["", "Failures (newest first):"]
        for run in failures[:FAILURE_LINES]:
            error = f"{run.error_type or run.state.value}: {run.error_message or ''}".strip()
            if len(error) > ERROR_EXCERPT:
                error = error[: ERROR_EXCERPT - 1] + "…"
            lines.append(f"  {run.entry}  {run.scheduled_for:%Y-%m-%dT%H:%M:%SZ}  {error}")
        if len(failures) > FAILURE_LINES:
            lines.append(f"  … and {len(failures) - FAILURE_LINES} more")
    return subject, "\n".join(lines) + "\n"
