"""Request and response models of `/api/v1`: what the views validate and what OpenAPI documents.

A schedule body has the field names of a `[schedule.<name>]` table plus ``name``; the write
models subclass `scheduling.config.settings.ScheduleEntry`, so the API validates exactly what the
file
does. Responses add a read-only ``status`` object; a client may send a fetched body back
unchanged (``status`` is ignored on write). Every instant in a response is ISO-8601: UTC with
``Z``, or the entry's own zone with its offset where the field name says ``local``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from scheduling.config.settings import Instant as InstantIn
from scheduling.config.settings import ScheduleEntry
from scheduling.operations.backfill import BackfillReport
from scheduling.operations.entries import EntryView, QueueView
from scheduling.operations.explain import Explanation
from scheduling.store import BeatStatus, HistoryRecord, LeaseRecord, RunRecord

__all__ = [
    "BackfillIn",
    "BackfillOut",
    "BackfillSlotOut",
    "BeatOut",
    "ErrorItem",
    "ExplainOut",
    "ExplainQuery",
    "HistoryList",
    "HistoryOut",
    "NextOut",
    "NextQuery",
    "Problem",
    "QueueList",
    "QueueOut",
    "RunAccepted",
    "RunList",
    "RunOut",
    "RunsQuery",
    "ScheduleIn",
    "ScheduleList",
    "ScheduleListQuery",
    "ScheduleOut",
    "SchedulePatch",
    "ScheduleReplace",
    "ScheduleStatus",
    "backfill_body",
    "beat_body",
    "explain_body",
    "history_body",
    "iso",
    "queue_body",
    "run_body",
    "schedule_body",
]

NAME_FIELD = Field(min_length=1, max_length=200, description="The entry's name (its table key).")
READ_ONLY_STATUS = Field(
    default=None,
    exclude=True,
    description="Ignored on write, so a fetched body can be sent back as it is.",
    json_schema_extra={"readOnly": True},
)


Instant = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""An ISO-8601 instant as the API writes it; typed ``date-time`` so generated clients parse it."""


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# --- requests ---------------------------------------------------------------------------------


class ScheduleIn(ScheduleEntry):
    """``POST /schedules``: a `[schedule.<name>]` table plus its name."""

    name: str = NAME_FIELD
    status: dict[str, Any] | None = READ_ONLY_STATUS


class ScheduleReplace(ScheduleEntry):
    """``PUT /schedules/{name}``: the whole definition; ``name``, if given, must match the path."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: dict[str, Any] | None = READ_ONLY_STATUS


def _optional(annotation: Any) -> Any:
    return annotation | None


SchedulePatch: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "SchedulePatch",
    __config__=ConfigDict(extra="forbid", hide_input_in_errors=True),
    __doc__=(
        "``PATCH /schedules/{name}``: a JSON merge patch (RFC 7396) of the definition. ``null`` "
        "resets a field to its default; setting one of every/cron/at/solar replaces the current"
        " kind."
    ),
    **{
        # rebuild_annotation keeps Annotated validators (durations are strings like "5s").
        field_name: (_optional(info.rebuild_annotation()), None)
        for field_name, info in ScheduleEntry.model_fields.items()
    },
    status=(dict[str, Any] | None, READ_ONLY_STATUS),
)


class ScheduleListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    after: str | None = Field(default=None, description="Cursor: the `next` of the previous page.")
    limit: int = Field(default=100, ge=1, le=500)
    enabled: bool | None = None
    source: Literal["config", "api"] | None = None
    queue: str | None = None


class RunsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    before: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="Cursor: the `next` of the page."
    )
    limit: int = Field(default=50, ge=1, le=500)


class NextQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    count: int = Field(default=5, ge=1, le=1000)
    after: InstantIn | None = Field(
        default=None,
        description="ISO-8601 with Z or an offset (URL-encode '+'); default now. Between "
        "1970 and 9000.",
    )


class BackfillIn(BaseModel):
    """``POST /schedules/{name}/backfill``: a past window, both ends inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    start: InstantIn = Field(alias="from", description="ISO-8601 with Z or an offset.")
    end: InstantIn = Field(alias="to", description="Not in the future.")
    dry_run: bool = Field(default=False, description="List what would run; dispatch nothing.")


class ExplainQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    at: InstantIn | None = Field(
        default=None, description="ISO-8601 with Z or an offset (URL-encode '+'); default now."
    )


# --- responses --------------------------------------------------------------------------------


class RunError(ApiModel):
    type: str | None
    message: str | None


class RunOut(ApiModel):
    task_id: str
    entry: str
    scheduled_for: Instant
    state: str
    manual: bool
    queue: str | None
    claimed_at: Instant
    dispatched_at: Instant | None
    started_at: Instant | None
    finished_at: Instant | None
    runtime: float | None = Field(description="Seconds.")
    hostname: str | None
    retries: int
    error: RunError | None


class RunList(ApiModel):
    items: list[RunOut]
    next: int | None = Field(description="Pass as `before` for the next (older) page.")


class HistoryOut(ApiModel):
    id: int
    entry: str
    at: str = Field(description="UTC.")
    action: Literal["create", "update", "delete", "pause", "resume", "run_now", "backfill"]
    actor: str = Field(
        description="token:<name> (API), dashboard:<name>, settings:<path> (a sync), cli:<user>."
    )
    details: dict[str, Any] = Field(
        description=(
            "create/delete: {definition}; update: {changes: {field: {from, to}}} where null is"
            " the default; run_now: {task_id}; backfill: {from, to, slots, task_ids}."
        )
    )


class HistoryList(ApiModel):
    items: list[HistoryOut]
    next: int | None = Field(description="Pass as `before` for the next (older) page.")


class ExplainOut(ApiModel):
    entry: str
    at: str = Field(description="The instant asked about (UTC).")
    slot: str | None = Field(description="The slot at or before it the answer is about.")
    reason: str = Field(
        description=(
            "dispatched, claimed, expired, revoked, skipped_overlap, missed, not_yet_due, due,"
            " beat_down, paused, disabled, created_after, before_start, after_end,"
            " max_runs_reached, deleted, no_slot or unrecorded."
        )
    )
    summary: str = Field(description="The answer in one sentence.")
    facts: dict[str, Any] = Field(
        description="Evidence: task_id, lag_seconds, state, error, rule, cause, paused_at, ..."
    )


class BackfillSlotOut(ApiModel):
    scheduled_for: str
    task_id: str
    action: Literal["dispatch", "skip"]
    state: str | None = Field(description="The ledger state behind a skip (or `missed`).")


class BackfillOut(ApiModel):
    entry: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    dry_run: bool
    slots: list[BackfillSlotOut]
    dispatched: int = Field(description="Claimed and confirmed by the broker.")
    unconfirmed: int = Field(description="Claimed, not confirmed: the leading beat republishes.")
    skipped: int = Field(description="Already in the ledger; left alone.")


class EntryErrorOut(ApiModel):
    message: str
    failures: int = Field(description="Attempts that failed in a row.")
    since: str
    retry_at: str | None = Field(description="When beat tries the entry again.")


class ScheduleStatus(ApiModel):
    source: Literal["config", "api"]
    paused: bool
    active: bool = Field(description="enabled and not paused")
    queue: str = Field(description="The queue runs go to (entry, then [routes], then default).")
    timezone: str
    schedule: str = Field(description="The schedule in words.")
    next_run_at: Instant | None = Field(description="UTC.")
    next_run_local: Instant | None = Field(description="In the entry's zone.")
    last_run: RunOut | None
    last_slot_missed: bool
    late: bool
    error: EntryErrorOut | None = Field(
        description="Set while beat holds the entry in error; other entries are unaffected."
    )
    total_runs: int
    version: int
    created_at: Instant
    updated_at: Instant


class ScheduleOut(ScheduleEntry):
    name: str
    status: ScheduleStatus


class ScheduleList(ApiModel):
    items: list[ScheduleOut]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last.")


class NextOut(ApiModel):
    name: str
    timezone: str
    fire_times: list[Instant] = Field(description="UTC.")
    fire_times_local: list[Instant] = Field(description="The same instants in the entry's zone.")


class RunAccepted(ApiModel):
    task_id: str
    run: str = Field(description="Where to follow the run.")


class QueueOut(ApiModel):
    name: str
    type: Literal["classic", "quorum"] = Field(
        description="classic: on one node; quorum: replicated on the cluster (Raft)."
    )
    priority: int
    default: bool
    max_priority: int | None
    exists: bool
    messages: int = Field(description="Messages ready.")
    consumers: int
    routed_entries: int = Field(description="Active entries whose runs go to this queue.")
    unattended: bool = Field(description="Entries are routed here but no worker consumes it.")


class QueueList(ApiModel):
    items: list[QueueOut]


class LeaseOut(ApiModel):
    holder: str
    token: int
    acquired_at: Instant
    expires_at: Instant
    live: bool


class BeatInstance(ApiModel):
    beat_id: str
    hostname: str
    pid: int
    role: Literal["leader", "standby"]
    last_tick: Instant
    lag: float | None = Field(description="Seconds from slot time to confirmed dispatch.")


class BeatOut(ApiModel):
    scheduler: Literal["static", "database"]
    leader: LeaseOut | None
    lag: float | None = Field(description="The leader's dispatch lag in its last tick, seconds.")
    lag_alert: float
    beats: list[BeatInstance]


class ErrorItem(ApiModel):
    path: str = Field(description="Dotted field path; empty for the body as a whole.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[ErrorItem] | None = None


# --- building response bodies (plain dicts: no re-validation on the hot path) ------------------


def iso(instant: datetime | None) -> str | None:
    """UTC instants end in ``Z``; instants in an entry's zone keep their offset."""
    if instant is None:
        return None
    text = instant.isoformat()
    return text.replace("+00:00", "Z") if instant.tzinfo is UTC else text


def backfill_body(report: BackfillReport) -> dict[str, Any]:
    return {
        "entry": report.entry,
        "from": iso(report.start),
        "to": iso(report.end),
        "dry_run": report.dry_run,
        "slots": [
            {
                "scheduled_for": iso(slot.scheduled_for),
                "task_id": slot.task_id,
                "action": slot.action,
                "state": slot.state,
            }
            for slot in report.slots
        ],
        "dispatched": report.dispatched,
        "unconfirmed": report.unconfirmed,
        "skipped": report.skipped,
    }


def explain_body(explanation: Explanation) -> dict[str, Any]:
    return {
        "entry": explanation.entry,
        "at": iso(explanation.at),
        "slot": iso(explanation.slot),
        "reason": explanation.reason,
        "summary": explanation.summary,
        "facts": explanation.facts,
    }


def history_body(record: HistoryRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "entry": record.entry,
        "at": iso(record.at),
        "action": record.action,
        "actor": record.actor,
        "details": record.details,
    }


def run_body(run: RunRecord) -> dict[str, Any]:
    error = (
        {"type": run.error_type, "message": run.error_message}
        if run.error_type or run.error_message
        else None
    )
    return {
        "task_id": run.task_id,
        "entry": run.entry,
        "scheduled_for": iso(run.scheduled_for),
        "state": str(run.state),
        "manual": run.manual,
        "queue": run.queue,
        "claimed_at": iso(run.claimed_at),
        "dispatched_at": iso(run.dispatched_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "runtime": run.runtime,
        "hostname": run.hostname,
        "retries": run.retries,
        "error": error,
    }


def schedule_body(view: EntryView) -> dict[str, Any]:
    record = view.record
    definition = record.definition.model_dump(mode="json", exclude_none=True)
    return {
        "name": record.name,
        **definition,
        "status": {
            "source": record.owner,
            "paused": record.paused,
            "active": record.active,
            "queue": view.queue,
            "timezone": view.timezone,
            "schedule": view.schedule,
            "next_run_at": iso(view.next_run_at),
            "next_run_local": iso(view.next_run_local),
            "last_run": run_body(view.last_run) if view.last_run else None,
            "last_slot_missed": view.last_slot_missed,
            "late": view.late,
            "error": {
                "message": view.fault.message,
                "failures": view.fault.failures,
                "since": iso(view.fault.since),
                "retry_at": iso(view.fault.retry_at),
            }
            if view.fault
            else None,
            "total_runs": view.total_runs,
            "version": record.version,
            "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at),
        },
    }


def queue_body(view: QueueView) -> dict[str, Any]:
    return {
        "name": view.name,
        "type": view.type,
        "priority": view.priority,
        "default": view.default,
        "max_priority": view.max_priority,
        "exists": view.exists,
        "messages": view.messages,
        "consumers": view.consumers,
        "routed_entries": view.routed_entries,
        "unattended": view.unattended,
    }


def beat_body(
    scheduler: str,
    lease: LeaseRecord | None,
    beats: list[BeatStatus],
    lag_alert: float,
    now: datetime,
) -> dict[str, Any]:
    leader_status = next((b for b in beats if lease and b.beat_id == lease.holder), None)
    return {
        "scheduler": scheduler,
        "leader": {
            "holder": lease.holder,
            "token": lease.token,
            "acquired_at": iso(lease.acquired_at),
            "expires_at": iso(lease.expires_at),
            "live": lease.live(now),
        }
        if lease
        else None,
        "lag": leader_status.lag if leader_status else None,
        "lag_alert": lag_alert,
        "beats": [
            {
                "beat_id": beat.beat_id,
                "hostname": beat.hostname,
                "pid": beat.pid,
                "role": beat.role,
                "last_tick": iso(beat.last_tick),
                "lag": beat.lag,
            }
            for beat in beats
        ],
    }
