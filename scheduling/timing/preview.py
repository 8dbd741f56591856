"""Previews of fire times on a work budget, for the API, the dashboard and the CLI.

A preview is asked for by people and read tokens, so it must answer fast whatever the entry:
a cron expression that matches once in years (``0 0 */31 2 1``) asked for a thousand fire times
walks millennia of calendar. The walk stops at the end of the supported range and at a time
budget; past the budget the caller gets `PreviewTooCostly`, saying how many times it found,
instead of a request that holds a CPU for seconds.
"""

from __future__ import annotations

import time
from datetime import datetime

from scheduling.config.bounds import LATEST
from scheduling.timing.timetables import Timetable

__all__ = ["PREVIEW_BUDGET", "PreviewTooCostly", "preview_fire_times"]

PREVIEW_BUDGET = 0.25
"""Seconds of work one preview may take."""


class PreviewTooCostly(ValueError):
    """The preview did not finish within its budget; `found` fire times were computed."""

    def __init__(self, count: int, found: int) -> None:
        super().__init__(
            f"computing {count} fire times takes too long for this schedule ({found} found "
            f"within {PREVIEW_BUDGET}s); ask for fewer"
        )
        self.count = count
        self.found = found


def preview_fire_times(
    timetable: Timetable, after: datetime, count: int, budget: float = PREVIEW_BUDGET
) -> list[datetime]:
    """Up to `count` slots after `after`, none past the supported range (`LATEST`).

    Raises `PreviewTooCostly` when the walk exceeds `budget` seconds.
    """
    deadline = time.monotonic() + budget
    times: list[datetime] = []
    fires = timetable.iter_after(after)
    while len(times) < count:
        try:
            fire = next(fires, None)
        except OverflowError:
            break
        if fire is None or fire >= LATEST:
            break
        times.append(fire)
        if time.monotonic() > deadline:
            raise PreviewTooCostly(count, len(times))
    return times
