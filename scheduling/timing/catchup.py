"""Catch-up: which due slots to dispatch now, and which to record as missed.

Pure arithmetic over a timetable, so the scheduler's tick, the API's previews and the tests
all share one answer. The rules, in order:

1. Due slots are those in (last_slot, now]. An entry that has never run (last_slot None) has
   no history to catch up: only its newest slot within `on_time` of now is due, and nothing
   is recorded as missed (callers that know when an entry was created and want the slots
   since then pass that instant as `last_slot`).
2. A due slot older than `now - misfire_grace` is missed, whatever the policy
   (`misfire_grace=None` means no limit).
3. Of the rest: `skip` dispatches only the newest slot and only if it is on time (it is not
   late, it is the current run); `latest` dispatches the newest; `all` dispatches the newest
   `max_catchup`. Whatever is not dispatched is missed.

Downtime can leave millions of due slots (a 1-second entry, a year). The plan never holds
them all: `missed` keeps the newest `max_catchup` missed slots, `missed_count` is the true
number, and `missed_since` the oldest, so a ledger can store a few rows plus a summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from scheduling.timing.timetables import Timetable, as_utc

__all__ = ["DEFAULT_ON_TIME", "CatchupPlan", "CatchupPolicy", "plan_catchup"]

CatchupPolicy = Literal["skip", "latest", "all"]

#: How late a slot may be dispatched and still count as on time rather than caught up.
#: Generous next to a beat tick (about a second) so that a slow tick never drops a run.
DEFAULT_ON_TIME = timedelta(minutes=1)

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class CatchupPlan:
    """What to do with the slots that fell due since the last one handled."""

    dispatch: list[datetime]  # slots to dispatch now, oldest first
    missed: list[datetime]  # the newest missed slots (at most max_catchup), oldest first
    next_slot: datetime | None  # the first slot strictly after now
    missed_count: int = 0  # every missed slot, including those not listed in `missed`
    missed_since: datetime | None = None  # the oldest missed slot

    @property
    def handled_through(self) -> datetime | None:
        """The newest slot this plan settles; the caller's next `last_slot`."""
        newest = [*self.dispatch[-1:], *self.missed[-1:]]
        return max(newest) if newest else None


def plan_catchup(
    timetable: Timetable,
    last_slot: datetime | None,
    now: datetime,
    policy: CatchupPolicy,
    misfire_grace: timedelta | None,
    max_catchup: int,
    *,
    on_time: timedelta = DEFAULT_ON_TIME,
) -> CatchupPlan:
    """Split the slots due in (last_slot, now] into dispatched and missed (see module doc)."""
    if policy not in get_args(CatchupPolicy):
        raise ValueError(f"catchup policy must be one of skip, latest, all; got {policy!r}")
    if max_catchup < 1:
        raise ValueError(f"max_catchup must be at least 1, got {max_catchup}")
    if misfire_grace is not None and misfire_grace < timedelta(0):
        raise ValueError(f"misfire_grace must not be negative, got {misfire_grace}")
    if on_time < timedelta(0):
        raise ValueError(f"on_time must not be negative, got {on_time}")
    now = as_utc(now, "now")
    next_slot = timetable.next_after(now)

    if last_slot is None:
        current = timetable.last_slots(now - on_time, now, 1)
        if misfire_grace is not None:
            current = [slot for slot in current if slot >= now - misfire_grace]
        return CatchupPlan(dispatch=current, missed=[], next_slot=next_slot)

    since = as_utc(last_slot, "last_slot")
    if since >= now:
        return CatchupPlan(dispatch=[], missed=[], next_slot=next_slot)

    fresh_since = since
    if misfire_grace is not None:
        fresh_since = max(since, now - misfire_grace - _TICK)
    wanted = max_catchup if policy == "all" else 1
    dispatch = timetable.last_slots(fresh_since, now, wanted)
    if policy == "skip":
        dispatch = [slot for slot in dispatch if now - slot <= on_time]

    missed_until = dispatch[0] - _TICK if dispatch else now
    missed_count = timetable.count_between(since, missed_until) if missed_until > since else 0
    if missed_count == 0:
        return CatchupPlan(dispatch=dispatch, missed=[], next_slot=next_slot)
    return CatchupPlan(
        dispatch=dispatch,
        missed=timetable.last_slots(since, missed_until, max_catchup),
        next_slot=next_slot,
        missed_count=missed_count,
        missed_since=timetable.next_after(since),
    )
