""" "Why did it (not) run?": what happened to an entry's slot at or before an instant, and why.

Built only from what the store recorded, never guessed: the run ledger (the slot's row and
its state), the entry's history (created, paused, resumed, deleted, by whom and when), the
leadership terms (which beat led when) and the broker and database outages beat recorded. The
answer names one reason code:

======================  =================================================================
``dispatched``          sent to the broker: task id, lag, outcome so far (runtime, error)
``claimed``             claimed, broker confirmation pending (the leading beat republishes)
``expired``             dispatched, but its message expired before a worker took it
``revoked``             claimed but never sent (the broker refused a run-now or backfill)
``skipped_overlap``     ``overlap = "skip"`` and the previous run was still unfinished
``missed``              recorded missed; ``rule`` says which catch-up rule dropped it
                        (``misfire_grace``, ``catchup_latest``, ``catchup_skip``,
                        ``max_catchup``) and ``cause`` why it was late
                        (``database_down``: beat recorded a database outage then;
                        ``beat_down``: no beat led then; ``broker_down``: the leader
                        recorded a broker outage then; ``leader_could_not_dispatch``:
                        none of these, so the beat itself did not keep up)
``not_yet_due``         the slot is in the future
``due``                 due, not yet dispatched (within the last minute, a leader is on it)
``beat_down``           no ledger row and no beat led at the slot's time
``paused``              the entry was paused at the slot's time (by whom, since when)
``disabled``            ``enabled = false``
``created_after``       the entry was created after the slot (new entries do not replay)
``before_start``        the instant is before the entry's ``start``
``after_end``           the instant is after the entry's ``end`` (its last slot is named)
``max_runs_reached``    the entry had used up ``max_runs``
``deleted``             the entry was deleted (by whom, when)
``no_slot``             the schedule has no slot in the year before the instant
``unrecorded``          a past slot beat moved beyond without a row: an older missed slot
                        beyond ``beat.max_catchup`` (only the newest are recorded), or a row
                        removed by ``purge_runs``
======================  =================================================================

The catch-up rule of a missed slot is judged with the entry's current definition; a slot older
than the first recorded leadership term cannot be judged for ``beat_down``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduling.config.compiler import compile_entry
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.errors import EntryNotFound
from scheduling.store import EntryRecord, HistoryRecord, RunRecord, RunState, Store

__all__ = ["Explanation", "explain_slot"]

LOOKBACK = timedelta(days=366)
"""How far back from the instant the slot is looked for."""
_DUE_WINDOW = timedelta(minutes=1)
_HISTORY_SCAN = 1000

_DISPATCHED_STATES = frozenset(
    {
        RunState.DISPATCHED,
        RunState.STARTED,
        RunState.RETRY,
        RunState.SUCCEEDED,
        RunState.FAILED,
    }
)


@dataclass(frozen=True)
class Explanation:
    entry: str
    at: datetime
    """The instant asked about."""
    slot: datetime | None
    """The slot at or before it that the answer is about (None when there is none)."""
    reason: str
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Finding:
    reason: str
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


def explain_slot(
    store: Store, settings: Settings, name: str, at: datetime, now: datetime
) -> Explanation:
    """Explain `name`'s slot at or before `at`; `EntryNotFound` for a name never recorded."""
    at, now = at.astimezone(UTC), now.astimezone(UTC)
    record = store.get_entry(name)
    history = store.entry_history(name, limit=_HISTORY_SCAN)
    if record is None:
        deleted = next((item for item in history if item.action == "delete"), None)
        if deleted is None:
            raise EntryNotFound(f"no schedule entry named {name!r}")
        return Explanation(
            name,
            at,
            None,
            "deleted",
            f"The entry was deleted at {_text(deleted.at)} by {deleted.actor}.",
            {"deleted_at": _iso_utc(deleted.at), "by": deleted.actor},
        )
    definition = record.definition
    if definition.start is not None and at < definition.start:
        return Explanation(
            name,
            at,
            None,
            "before_start",
            f"The entry starts at {_text(definition.start)}; nothing is due before it.",
            {"start": _iso_utc(definition.start)},
        )
    timetable = compile_entry(name, definition, settings).timetable
    if definition.end is not None and at > definition.end:
        last = timetable.last_slots(definition.end - LOOKBACK, definition.end, 1)
        return Explanation(
            name,
            at,
            last[0] if last else None,
            "after_end",
            f"The entry ended at {_text(definition.end)}.",
            {"end": _iso_utc(definition.end), "last_slot": _iso_utc(last[0]) if last else None},
        )
    found = timetable.last_slots(at - LOOKBACK, at, 1)
    if not found:
        return Explanation(
            name, at, None, "no_slot", "The schedule has no slot in the year before this instant."
        )
    slot = found[0]
    run = _slot_run(store, name, slot)
    finding = (
        _from_ledger(store, definition, run, slot)
        if run is not None
        else _without_row(store, record, history, slot, now)
    )
    return Explanation(name, at, slot, finding.reason, finding.summary, finding.facts)


def _slot_run(store: Store, name: str, slot: datetime) -> RunRecord | None:
    states = store.slot_states(name, slot, slot)
    if slot not in states:
        return None
    return store.get_run(states[slot][1])


def _from_ledger(
    store: Store, definition: ScheduleEntry, run: RunRecord, slot: datetime
) -> _Finding:
    facts: dict[str, Any] = {"task_id": run.task_id, "state": run.state.value}
    if run.state in _DISPATCHED_STATES:
        lag = None if run.dispatched_at is None else (run.dispatched_at - slot).total_seconds()
        facts.update(
            lag_seconds=lag,
            dispatched_at=_iso_utc(run.dispatched_at),
            finished_at=_iso_utc(run.finished_at),
            runtime_seconds=run.runtime,
            hostname=run.hostname,
            error=(
                None
                if not (run.error_type or run.error_message)
                else f"{run.error_type or 'Error'}: {run.error_message or ''}".strip()
            ),
        )
        lag_text = "" if lag is None else f" {lag:.1f} s after its time"
        return _Finding(
            "dispatched",
            f"Dispatched{lag_text} as task {run.task_id}; it is {run.state.value}.",
            facts,
        )
    if run.state is RunState.PENDING:
        summary = "Claimed; the broker has not confirmed it yet (the leading beat republishes)."
        return _Finding("claimed", summary, facts)
    if run.state is RunState.EXPIRED:
        facts["dispatched_at"] = _iso_utc(run.dispatched_at)
        summary = "Dispatched, but its message expired before a worker took it (see `expires`)."
        return _Finding("expired", summary, facts)
    if run.state is RunState.REVOKED:
        facts["error"] = run.error_message
        summary = "Claimed but never sent: the broker did not confirm it."
        return _Finding("revoked", summary, facts)
    if run.state is RunState.SKIPPED:
        summary = 'Skipped: overlap = "skip" and the previous run had not finished.'
        return _Finding("skipped_overlap", summary, facts)
    if run.error_type == "MisfireGrace":  # claimed on time, unconfirmed past the grace
        decided_at, rule = run.finished_at or run.claimed_at, "misfire_grace"
        late = decided_at - slot
    else:
        decided_at = run.claimed_at
        late = decided_at - slot
        rule = _catchup_rule(definition, late)
    cause = _lateness_cause(store, slot)
    why = cause.pop("why")
    facts.update(rule=rule, recorded_at=_iso_utc(decided_at), late_seconds=late.total_seconds())
    facts.update(cause)
    summary = f"Missed: recorded {_late_text(late)} late, dropped by {_RULE_WORDS[rule]}; {why}"
    return _Finding("missed", summary, facts)


_RULE_WORDS = {
    "misfire_grace": "misfire_grace (it was older than the grace)",
    "catchup_latest": 'catchup = "latest" (a newer slot ran instead)',
    "catchup_skip": 'catchup = "skip" (late slots do not run)',
    "max_catchup": 'catchup = "all" beyond beat.max_catchup',
}


def _catchup_rule(definition: ScheduleEntry, late: timedelta) -> str:
    if definition.misfire_grace is not None and late > definition.misfire_grace:
        return "misfire_grace"
    return {"latest": "catchup_latest", "skip": "catchup_skip"}.get(
        definition.catchup, "max_catchup"
    )


def _lateness_cause(store: Store, slot: datetime) -> dict[str, Any]:
    """Was a beat leading when the slot fell due? (``why`` is the answer in words.)"""
    first = store.first_lease_term_at()
    if first is None or first > slot:
        return {"cause": None, "why": "no leadership record reaches back that far."}
    database = _outage(store, "database", slot, "the database did not answer beat")
    if database is not None:
        return database
    gap = _leaderless_at(store, slot)
    if gap is not None:
        return _stretch("beat_down", "leaderless", *gap, "no beat led")
    broker = _outage(store, "broker", slot, "the broker was unreachable")
    if broker is not None:
        return broker
    return {
        "cause": "leader_could_not_dispatch",
        "why": "a beat led and no broker or database outage was recorded: the beat did not"
        " keep up.",
    }


def _outage(store: Store, dependency: str, slot: datetime, what: str) -> dict[str, Any] | None:
    """``<dependency>_down`` when beat recorded an outage of it around `slot`."""
    recorded = store.outages_at(dependency, slot)
    if not recorded:
        return None
    cause = f"{dependency}_down"
    return _stretch(cause, cause, recorded[0].started_at, recorded[-1].ended_at, what)


def _stretch(
    cause: str, prefix: str, began: datetime, ended: datetime | None, what: str
) -> dict[str, Any]:
    return {
        "cause": cause,
        f"{prefix}_from": _iso_utc(began),
        f"{prefix}_until": _iso_utc(ended),
        "why": f"{what} from {_text(began)}" + (f" to {_text(ended)}." if ended else " on."),
    }


def _leaderless_at(store: Store, instant: datetime) -> tuple[datetime, datetime | None] | None:
    """The leaderless stretch around `instant` (start, end or None if ongoing), if any."""
    terms = store.lease_terms(instant - LOOKBACK, instant + LOOKBACK)
    before = [term for term in terms if term.started_at <= instant]
    if any(term.ended_at >= instant for term in before):
        return None
    after = [term.started_at for term in terms if term.started_at > instant]
    start = max((term.ended_at for term in before), default=instant)
    return start, min(after, default=None)


def _without_row(
    store: Store, record: EntryRecord, history: list[HistoryRecord], slot: datetime, now: datetime
) -> _Finding:
    definition, created_at = record.definition, record.created_at
    if slot > now:
        return _Finding("not_yet_due", f"Not due yet: it is due at {_text(slot)}.", {})
    if created_at > slot:
        return _Finding(
            "created_after",
            f"The entry was created at {_text(created_at)}, after this slot; new entries do not"
            " replay past slots (backfill runs them on request).",
            {"created_at": _iso_utc(created_at)},
        )
    pause = _pause_at(history, slot, record.paused)
    if pause is not None:
        since, actor = pause
        since_text = f" since {_text(since)}" if since else ""
        by = f" by {actor}" if actor else ""
        return _Finding(
            "paused",
            f"The entry was paused{since_text}{by}; paused slots are not caught up on resume.",
            {"paused_at": _iso_utc(since), "by": actor},
        )
    if not definition.enabled:
        summary = "The entry is disabled (enabled = false)."
        return _Finding("disabled", summary, {})
    if definition.max_runs is not None and record.run_count >= definition.max_runs:
        summary = f"The entry had used up max_runs ({definition.max_runs})."
        return _Finding("max_runs_reached", summary, {})
    gap = _leaderless_at(store, slot)
    first = store.first_lease_term_at()
    if gap is not None and first is not None and first <= slot:
        until = gap[1]
        until_text = f" to {_text(until)}" if until else " (and none leads now)"
        return _Finding(
            "beat_down",
            f"No beat led from {_text(gap[0])}{until_text}, so nothing dispatched this slot.",
            {"leaderless_from": _iso_utc(gap[0]), "leaderless_until": _iso_utc(until)},
        )
    if now - slot <= _DUE_WINDOW or record.last_slot is None or record.last_slot < slot:
        summary = "Due; the leading beat has not claimed it yet."
        return _Finding("due", summary, {"last_slot": _iso_utc(record.last_slot)})
    return _Finding(
        "unrecorded",
        "Beat moved past this slot without a ledger row: it was one of the older missed slots"
        " beyond beat.max_catchup (only the newest are recorded), or purge_runs removed it.",
        {"last_slot": _iso_utc(record.last_slot)},
    )


def _pause_at(
    history: list[HistoryRecord], slot: datetime, paused_now: bool
) -> tuple[datetime | None, str | None] | None:
    """(since, by whom) when the entry was paused at `slot`; None when it was not."""
    for item in history:  # newest first
        if item.at > slot or item.action not in {"pause", "resume"}:
            continue
        return (item.at, item.actor) if item.action == "pause" else None
    later = [item for item in history if item.action in {"pause", "resume"}]
    if not later and paused_now:
        return None, None  # paused before the history began, and never resumed since
    if later and later[-1].action == "resume":
        return None, None  # the first recorded change after the slot resumed it
    return None


def _iso_utc(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _late_text(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
