"""What the store hands out: frozen records, so callers can cache and share them across threads.

Records are plain dataclasses rather than ORM objects on purpose: a record never talks to the
database behind the caller's back, and building 100k of them at beat start-up stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from scheduling.config.settings import ScheduleEntry

Owner = Literal["config", "api"]
Role = Literal["leader", "standby"]


class RunState(StrEnum):
    """Where a slot's run is in its life; the ledger's `state` column holds the value."""

    PENDING = "pending"
    """Claimed by beat, publish not yet confirmed by the broker."""
    DISPATCHED = "dispatched"
    """The broker confirmed the message."""
    STARTED = "started"
    RETRY = "retry"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    MISSED = "missed"
    """Fell outside misfire_grace or the catch-up policy; never dispatched."""
    SKIPPED = "skipped"
    """overlap = "skip" while the previous run was unfinished; never dispatched."""


FINISHED_STATES: frozenset[RunState] = frozenset(
    {
        RunState.SUCCEEDED,
        RunState.FAILED,
        RunState.EXPIRED,
        RunState.REVOKED,
        RunState.MISSED,
        RunState.SKIPPED,
    }
)
UNFINISHED_STATES: frozenset[RunState] = frozenset(set(RunState) - FINISHED_STATES)
"""PENDING, DISPATCHED, STARTED, RETRY: the states that block an `overlap = "skip"` entry."""
LEDGER_ONLY_STATES: frozenset[RunState] = frozenset({RunState.MISSED, RunState.SKIPPED})
"""Slots recorded but never dispatched: finished from the start, no run_count."""


@dataclass(frozen=True, slots=True)
class EntryRecord:
    name: str
    owner: Owner
    definition: ScheduleEntry
    paused: bool
    """Set by API pause/resume; config sync never touches it."""
    next_run_at: datetime | None
    """The next slot beat will claim (None: exhausted or disabled)."""
    last_slot: datetime | None
    """Newest slot claimed (dispatched, missed or skipped)."""
    run_count: int
    """Slots claimed for dispatch so far (for max_runs); manual runs do not count."""
    version: int
    """Bumped on every write of this row, progress included."""
    change_seq: int
    """Global change sequence at the last definition change (create, replace, pause, sync)."""
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.definition.enabled and not self.paused


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    entry: str
    scheduled_for: datetime
    task_id: str
    state: RunState
    manual: bool
    """A "run now" from the API or CLI rather than a slot."""
    queue: str | None
    claimed_at: datetime
    dispatched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    runtime: float | None
    """Seconds."""
    hostname: str | None
    error_type: str | None
    error_message: str | None
    retries: int

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass(frozen=True, slots=True)
class SlotClaim:
    entry: str
    scheduled_for: datetime
    task_id: str
    state: RunState
    """PENDING (to publish), MISSED or SKIPPED (ledger only)."""
    queue: str | None = None
    manual: bool = False


@dataclass(frozen=True, slots=True)
class ManualRun:
    """A "run now" request to claim: the entry, when it was asked for, and its task id."""

    entry: str
    at: datetime
    task_id: str
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class SyncSummary:
    created: list[str]
    updated: list[str]
    pruned: list[str]
    unchanged: int

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.pruned)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str
    token: int
    """Fencing token: grows by one whenever the holder changes."""
    expires_at: datetime
    acquired_at: datetime
    observed_at: datetime | None = field(default=None, compare=False)
    """The database's clock when the lease was read: liveness is judged on it, not the host's."""

    def live(self, fallback: datetime) -> bool:
        """Unexpired on the database's clock (`fallback`, a host clock, if it was not read)."""
        return self.expires_at > (self.observed_at or fallback)

    def seconds_left(self, fallback: datetime) -> float:
        return (self.expires_at - (self.observed_at or fallback)).total_seconds()


@dataclass(frozen=True, slots=True)
class BeatStatus:
    beat_id: str
    hostname: str
    pid: int
    role: Role
    last_tick: datetime
    lag: float | None
    """Seconds between slot time and confirmed dispatch in the last tick that dispatched."""


@dataclass(frozen=True, slots=True)
class EntryFault:
    """An entry beat could not schedule: isolated, retried with backoff, shown everywhere."""

    name: str
    message: str
    failures: int
    since: datetime
    retry_at: datetime | None
