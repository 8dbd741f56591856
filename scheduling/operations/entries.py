"""What API, dashboard and CLI do to the schedule, as plain functions over the store.

Every write is validated exactly like a `[schedule.<name>]` table in settings.toml (model,
entry name, known queue, registered task, arguments that bind) before anything is written, so an
invalid request changes nothing. The functions are synchronous and take their services (store,
publisher, settings, task registry) as arguments: async views run them with
`scheduling.flask.asyncio_bridge.run_blocking`, the CLI calls them directly. No Flask in here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import ValidationError

from scheduling.broker.publisher import BatchPublishError, OutgoingRun
from scheduling.broker.topology import QueueStatus
from scheduling.config.bounds import definition_size
from scheduling.config.compiler import CompiledEntry, compile_entry, expiry, resolve_queue
from scheduling.config.loading import route_for
from scheduling.config.registry import entry_task_problems
from scheduling.config.secret_refs import secret_ref_problems
from scheduling.config.settings import (
    ENTRY_NAME,
    SCHEDULE_KINDS,
    SOLAR_PLACE,
    QueueType,
    ScheduleEntry,
    Settings,
)
from scheduling.errors import (
    BrokerUnavailable,
    EntryNotFound,
    FieldProblem,
    InvalidEntry,
    PublishError,
    StoreError,
)
from scheduling.store import (
    EntryFault,
    EntryRecord,
    HistoryRecord,
    HistoryRow,
    ManualRun,
    QueueMatch,
    RunRecord,
    RunState,
    Store,
)
from scheduling.timing.preview import PreviewTooCostly, preview_fire_times

__all__ = [
    "BrokerUnavailable",
    "EntryView",
    "FieldProblem",
    "InvalidEntry",
    "Publisher",
    "QueueView",
    "RoutedEntries",
    "RunNowRequest",
    "RunOutcome",
    "check_entry",
    "create_entry",
    "delete_entry",
    "entry_history",
    "entry_view",
    "entry_views",
    "initial_next_run",
    "list_entries",
    "mark_dispatched",
    "next_fire_times",
    "patched_definition",
    "pause_entry",
    "publish_confirmed",
    "put_entry",
    "queue_views",
    "replace_entry",
    "resume_entry",
    "run_message",
    "run_now",
    "start_runs",
    "validation_problems",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Publisher(Protocol):
    """What `run_now` needs: a `ConfirmedPublisher`, or a thread-safe pool of them."""

    def publish(self, runs: Sequence[OutgoingRun]) -> None: ...


# --- validation ---------------------------------------------------------------------------


def validation_problems(
    error: ValidationError, prefix: tuple[str | int, ...] = ()
) -> list[FieldProblem]:
    """Pydantic's errors as field problems (the input value is never echoed: it may be secret)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        loc = (*prefix, *item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append(FieldProblem(".".join(str(part) for part in loc), message))
    return problems


def check_entry(
    name: str, definition: ScheduleEntry, settings: Settings, registry: Mapping[str, Any]
) -> CompiledEntry:
    """Validate an entry as settings.toml would be validated; raise `InvalidEntry`."""
    problems: list[FieldProblem] = []
    if not ENTRY_NAME.match(name):
        problems.append(
            FieldProblem(
                "name",
                "invalid entry name; use letters, digits and _ . : - (at most 200 characters, "
                "starting with a letter or digit)",
            )
        )
    size, limit = definition.size(), settings.app.max_definition_size
    if size > limit:
        parts = {
            "args": definition_size(definition.args, [], ""),
            "kwargs": definition_size([], definition.kwargs, ""),
            "description": definition_size([], {}, definition.description),
        }
        problems.append(
            FieldProblem(
                max(parts, key=parts.__getitem__),
                f"args, kwargs and description take {size} bytes of JSON, more than "
                f"[app].max_definition_size ({limit})",
            )
        )
    for where, message in secret_ref_problems(definition.args, "args") + secret_ref_problems(
        definition.kwargs, "kwargs"
    ):
        problems.append(FieldProblem(where, message))
    if definition.queue is not None and definition.queue not in settings.queues:
        known = ", ".join(sorted(settings.queues))
        problems.append(
            FieldProblem("queue", f"unknown queue {definition.queue!r}; declared queues: {known}")
        )
    for line in entry_task_problems(name, definition, registry):
        location, _, message = line.partition(": ")
        problems.append(FieldProblem(location.rpartition(".")[2], message))
    if problems:
        raise InvalidEntry(name, problems)
    return compile_entry(name, definition, settings)


def patched_definition(current: ScheduleEntry, patch: Mapping[str, Any]) -> ScheduleEntry:
    """JSON merge patch (RFC 7396) of a definition; ``null`` resets a field to its default.

    Setting one of ``every``/``cron``/``at``/``solar`` replaces the entry's current kind, so
    switching an interval entry to cron needs only ``{"cron": "..."}`` (a solar entry's
    ``latitude`` and ``longitude`` go with its kind). Raises pydantic's ValidationError.
    """
    merged: dict[str, Any] = current.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    if any(kind in patch for kind in SCHEDULE_KINDS):
        for kind in SCHEDULE_KINDS:
            merged.pop(kind, None)
        if patch.get("solar") is None:
            for place in SOLAR_PLACE:
                merged.pop(place, None)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return ScheduleEntry.model_validate(merged)


def initial_next_run(compiled: CompiledEntry, now: datetime) -> datetime | None:
    """The first slot beat should claim for a new or redefined entry (None when disabled)."""
    if not compiled.entry.enabled:
        return None
    return compiled.timetable.next_after(now)


# --- writes ---------------------------------------------------------------------------------


def create_entry(
    store: Store,
    settings: Settings,
    registry: Mapping[str, Any],
    name: str,
    definition: ScheduleEntry,
    now: datetime,
    actor: str = "unknown",
) -> EntryRecord:
    """A new API-owned entry; `EntryExists` if the name is taken (by the API or the file)."""
    compiled = check_entry(name, definition, settings, registry)
    return store.create_entry(
        name, definition, owner="api", next_run_at=initial_next_run(compiled, now), actor=actor
    )


def replace_entry(
    store: Store,
    settings: Settings,
    registry: Mapping[str, Any],
    name: str,
    definition: ScheduleEntry,
    now: datetime,
    actor: str = "unknown",
) -> EntryRecord:
    """Redefine an API-owned entry; `ConfigOwnedEntry` for one settings.toml declares."""
    compiled = check_entry(name, definition, settings, registry)
    next_run = initial_next_run(compiled, now)
    return store.replace_entry(name, definition, next_run_at=next_run, actor=actor)


def put_entry(
    store: Store,
    settings: Settings,
    registry: Mapping[str, Any],
    name: str,
    definition: ScheduleEntry,
    now: datetime,
    actor: str = "unknown",
) -> tuple[EntryRecord, bool]:
    """Replace the entry, or create it when there is none; True when it was created."""
    compiled = check_entry(name, definition, settings, registry)
    next_run = initial_next_run(compiled, now)
    try:
        return store.replace_entry(name, definition, next_run_at=next_run, actor=actor), False
    except EntryNotFound:
        created = store.create_entry(
            name, definition, owner="api", next_run_at=next_run, actor=actor
        )
        return created, True


def delete_entry(store: Store, name: str, actor: str = "unknown") -> None:
    store.delete_entry(name, actor=actor)


def pause_entry(store: Store, name: str, actor: str = "unknown") -> EntryRecord:
    return store.set_paused(name, True, actor=actor)


def entry_history(
    store: Store, name: str, *, before_id: int | None, limit: int
) -> tuple[list[HistoryRecord], int | None]:
    """A page of the entry's history, newest first, and the cursor of the next page.

    A deleted entry still has its history; a name that never had either is `EntryNotFound`.
    """
    records = store.entry_history(name, before_id=before_id, limit=limit + 1)
    if not records and before_id is None and store.get_entry(name) is None:
        raise EntryNotFound(f"no schedule entry named {name!r}")
    more = len(records) > limit
    records = records[:limit]
    return records, records[-1].id if more else None


def resume_entry(
    store: Store, settings: Settings, name: str, now: datetime, actor: str = "unknown"
) -> EntryRecord:
    """Resume without a burst: slots that fell inside the pause are not caught up.

    The next run moves to the first slot after now (while the entry is still paused, so beat
    never sees it resumed with a stale next run), then the pause is lifted.
    """
    record = store.get_entry(name)
    if record is None:
        raise EntryNotFound(f"no schedule entry named {name!r}")
    if record.paused and (record.next_run_at is None or record.next_run_at <= now):
        compiled = compile_entry(name, record.definition, settings)
        store.set_next_run(name, initial_next_run(compiled, now))
    return store.set_paused(name, False, actor=actor)


RunOutcome = RunRecord | Exception
"""What one run-now request of a batch came to: its run, or the error to raise for it."""


class RunNowRequest(NamedTuple):
    """One run-now of a batch: which entry, when it was asked for, and by whom."""

    entry: str
    at: datetime
    actor: str | None = None
    """Recorded in the entry's history (``run_now``) once the broker confirmed the run, in the
    transaction that marks it dispatched; None records nothing."""


def run_now(
    store: Store,
    publisher: Publisher,
    settings: Settings,
    name: str,
    clock: Clock = utc_now,
    *,
    actor: str | None = None,
) -> RunRecord:
    """Start a run of `name` now, recorded in the ledger like a slot (with ``manual=True``).

    Outbox order: the ledger row is claimed first, the message is published with confirms, then
    the row is marked dispatched (and, with an `actor`, the run recorded in the entry's
    history). When the broker does not confirm, the row is marked revoked (so no beat
    republishes a run the caller was told did not start) and `BrokerUnavailable` is raised.
    """
    (outcome,) = start_runs(
        store, publisher, settings, [RunNowRequest(name, clock(), actor)], clock
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def start_runs(
    store: Store,
    publisher: Publisher,
    settings: Settings,
    requests: Sequence[RunNowRequest | tuple[str, datetime]],
    clock: Clock = utc_now,
) -> list[RunOutcome]:
    """`run_now` for many requests at once: the group commit of run-now.

    One write transaction claims every row, one pipelined publish sends every message and
    waits for all confirms, one write transaction marks the confirmed ones dispatched and
    records them in their entries' history; so a burst of requests costs three round trips,
    not three per request (a request is a `RunNowRequest`, or a plain (entry, at) pair that
    records no history). Outcomes come back in
    request order: an unknown entry is `EntryNotFound` for its requests only, a message the
    broker did not confirm is `BrokerUnavailable` (its row revoked). A store that cannot claim
    raises `StoreError` for the whole batch (nothing was written, nothing published).
    """
    asked = [RunNowRequest(*request) for request in requests]
    outcomes: list[RunOutcome | None] = [None] * len(asked)
    compiled: dict[str, CompiledEntry | Exception] = {}
    definitions: dict[str, ScheduleEntry] = {}
    for request in asked:
        if request.entry not in compiled:
            compiled[request.entry] = _compiled_entry(store, settings, request.entry, definitions)
    claims: list[tuple[int, ManualRun]] = []
    for index, (name, at, _) in enumerate(asked):
        target = compiled[name]
        if isinstance(target, EntryNotFound):
            outcomes[index] = EntryNotFound(str(target))  # one instance per request
        elif isinstance(target, Exception):
            outcomes[index] = target
        else:
            claims.append((index, ManualRun(name, at, str(uuid.uuid4()), target.queue)))
    fresh = [claim for _, claim in claims]  # task ids made above: nothing to look up
    claimed = {run.task_id: run for run in store.claim_manual_runs(fresh, new_task_ids=True)}
    outgoing: list[OutgoingRun] = []
    for index, claim in claims:
        run = claimed.get(claim.task_id)
        if run is None:  # deleted between the read and the claim
            outcomes[index] = EntryNotFound(f"no schedule entry named {claim.entry!r}")
            continue
        target = compiled[claim.entry]
        assert isinstance(target, CompiledEntry)
        outgoing.append(run_message(target, definitions[claim.entry], run, claim.at))
    confirmed, failure = publish_confirmed(publisher, outgoing)
    unconfirmed = [run.task_id for run in outgoing if run.task_id not in confirmed]
    if failure is not None:
        _revoke_unpublished(store, unconfirmed, failure, clock())
    confirmed_at = clock()
    history: list[HistoryRow] = []
    for index, claim in claims:
        actor = asked[index].actor
        if actor is not None and claim.task_id in confirmed:
            history.append(HistoryRow(claim.entry, "run_now", actor, {"task_id": claim.task_id}))
    marked = bool(confirmed) and mark_dispatched(store, sorted(confirmed), confirmed_at, history)
    for index, claim in claims:
        run = claimed.get(claim.task_id)
        if run is None:
            continue
        if claim.task_id in confirmed:
            outcomes[index] = (
                dataclasses.replace(run, state=RunState.DISPATCHED, dispatched_at=confirmed_at)
                if marked
                else run
            )
        else:
            error = BrokerUnavailable(
                f"the broker did not confirm the run of {claim.entry!r}; nothing was started "
                f"({failure})"
            )
            error.__cause__ = failure
            outcomes[index] = error
    settled: list[RunOutcome] = []
    for outcome in outcomes:
        assert outcome is not None, "every request of the batch has an outcome"
        settled.append(outcome)
    return settled


def _compiled_entry(
    store: Store, settings: Settings, name: str, definitions: dict[str, ScheduleEntry]
) -> CompiledEntry | Exception:
    """The entry compiled, or the error its requests answer with (a store error fails all)."""
    record = store.get_entry(name)
    if record is None:
        return EntryNotFound(f"no schedule entry named {name!r}")
    definitions[name] = record.definition
    try:
        return compile_entry(name, record.definition, settings)
    except (KeyError, ValueError) as error:  # a stored entry whose queue left the settings
        return error


def run_message(
    compiled: CompiledEntry, definition: ScheduleEntry, run: RunRecord, now: datetime
) -> OutgoingRun:
    lifetime = expiry(definition, compiled.timetable)
    return OutgoingRun(
        task_id=run.task_id,
        task=compiled.task,
        args=list(definition.args),
        kwargs=dict(definition.kwargs),
        queue=compiled.queue,
        entry=run.entry,
        scheduled_for=run.scheduled_for,
        expires=now + lifetime if lifetime is not None else None,
        priority=compiled.options.get("priority"),
    )


def publish_confirmed(
    publisher: Publisher, outgoing: Sequence[OutgoingRun]
) -> tuple[frozenset[str], PublishError | None]:
    """The task ids the broker confirmed, and why the others were not (None: all were)."""
    if not outgoing:
        return frozenset(), None
    try:
        publisher.publish(outgoing)
    except BatchPublishError as error:
        return error.confirmed, error
    except PublishError as error:
        return frozenset(), error
    return frozenset(run.task_id for run in outgoing), None


def mark_dispatched(
    store: Store, task_ids: Sequence[str], at: datetime, history: Sequence[HistoryRow] = ()
) -> bool:
    try:
        store.mark_dispatched(task_ids, at, history)
    except StoreError:
        # The messages are confirmed and will run; the worker moves the rows on when it starts.
        logger.warning(
            "%d confirmed run(s) could not be marked dispatched%s",
            len(task_ids),
            f" nor recorded in their entries' history ({len(history)})" if history else "",
        )
        return False
    return True


def _revoke_unpublished(
    store: Store, task_ids: Sequence[str], error: PublishError, at: datetime
) -> None:
    for task_id in task_ids:
        try:
            store.record_run_finished(
                task_id,
                RunState.REVOKED,
                at,
                error_type=type(error).__name__,
                error_message="the broker did not confirm the message",
            )
        except StoreError:
            logger.warning("could not mark unpublished run %s revoked", task_id)


# --- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryView:
    """An entry as people and clients see it: definition plus where it stands now."""

    record: EntryRecord
    queue: str
    timezone: str
    schedule: str
    next_run_at: datetime | None
    next_run_local: datetime | None
    last_run: RunRecord | None
    last_slot_missed: bool
    late: bool
    fault: EntryFault | None = None
    """Set while beat holds the entry in error (see `scheduling.beat.faults`)."""

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def total_runs(self) -> int:
        return self.record.run_count


def late_grace(settings: Settings) -> Any:
    """How far behind its next run an entry may fall before it counts as late."""
    return max(settings.beat.lag_alert, 2 * settings.beat.sync_interval)


def entry_view(store: Store, settings: Settings, record: EntryRecord, now: datetime) -> EntryView:
    """Build the view of one entry (one ledger read: its newest and its last dispatched run)."""
    return entry_views(store, settings, [record], now)[0]


def load_entry_view(store: Store, settings: Settings, name: str, now: datetime) -> EntryView:
    """The view of the entry named `name`, from one statement (`Store.entry_snapshot`).

    Raises `EntryNotFound` when there is no such entry.
    """
    snapshot = store.entry_snapshot(name)
    if snapshot is None:
        raise EntryNotFound(f"no schedule entry named {name!r}")
    latest = None if snapshot.newest is None else (snapshot.newest, snapshot.last)
    return _view(settings, snapshot.record, latest, now, snapshot.fault)


def entry_views(
    store: Store, settings: Settings, records: list[EntryRecord], now: datetime
) -> list[EntryView]:
    """The views of a page of entries, with one ledger read for all of them."""
    names = [record.name for record in records]
    latest = store.latest_runs(names)
    faults = store.entry_faults(names)
    return [
        _view(settings, record, latest.get(record.name), now, faults.get(record.name))
        for record in records
    ]


def _view(
    settings: Settings,
    record: EntryRecord,
    latest: tuple[RunRecord, RunRecord | None] | None,
    now: datetime,
    fault: EntryFault | None = None,
) -> EntryView:
    zone = settings.entry_zone(record.definition)
    schedule: str = record.definition.kind
    compiled: CompiledEntry | None = None
    try:
        compiled = compile_entry(record.name, record.definition, settings)
        schedule = compiled.timetable.describe()
    except (KeyError, ValueError, OverflowError):
        # A stored entry whose queue left the settings, or one written before a bound was
        # introduced: still shown (and deletable), never a failed read.
        compiled = None
    newest, last = latest if latest is not None else (None, None)
    missed = newest is not None and newest.state == RunState.MISSED
    next_run = record.next_run_at
    overdue = next_run is not None and record.active and next_run < now - late_grace(settings)
    try:
        next_local = next_run.astimezone(zone) if next_run else None
    except OverflowError:
        next_local = next_run
    return EntryView(
        record=record,
        queue=compiled.queue if compiled else resolve_queue(record.definition, settings),
        timezone=zone.key,
        schedule=schedule,
        next_run_at=next_run,
        next_run_local=next_local,
        last_run=last,
        last_slot_missed=missed,
        late=overdue or (missed and record.active),
        fault=fault,
    )


def list_entries(
    store: Store,
    settings: Settings,
    *,
    after: str | None = None,
    limit: int = 100,
    source: Literal["config", "api"] | None = None,
    enabled: bool | None = None,
    queue: str | None = None,
) -> tuple[list[EntryRecord], str | None]:
    """One page of entries by name, filtered in SQL; the cursor for the next page (None: last).

    The queue an entry's messages go to follows its definition, else the settings' routes: the
    settings decide which of the (few) distinct tasks without a queue of their own land in
    `queue`, and the store filters by that set.
    """
    match = None
    if queue is not None:
        routed = {
            task
            for task in store.unqueued_tasks()
            if (route_for(task, settings.routes) or settings.default_queue) == queue
        }
        match = QueueMatch(queue, frozenset(routed))
    batch = store.list_entries(
        after=after, limit=limit + 1, owner=source, enabled=enabled, queue=match
    )
    page = batch[:limit]
    return page, page[-1].name if len(batch) > limit else None


def next_fire_times(
    store: Store, settings: Settings, name: str, after: datetime, count: int
) -> tuple[str, list[datetime]]:
    """The entry's zone and its next `count` slots after `after` (UTC).

    Raises `PreviewTooCostly` past the preview's work budget, and `InvalidEntry` for a stored
    definition that cannot be previewed (say, one written before a bound was introduced).
    """
    record = store.get_entry(name)
    if record is None:
        raise EntryNotFound(f"no schedule entry named {name!r}")
    try:
        compiled = compile_entry(name, record.definition, settings)
        return compiled.timetable.zone.key, preview_fire_times(compiled.timetable, after, count)
    except PreviewTooCostly:
        raise
    except (KeyError, ValueError, OverflowError) as error:
        raise InvalidEntry(name, [FieldProblem("", f"cannot be previewed: {error}")]) from None


# --- queues ---------------------------------------------------------------------------------


class RoutedEntries:
    """How many active entries route to each queue, kept current from the store's change feed.

    The first call reads every entry once; later calls apply only what changed since (one cheap
    read of the change sequence when nothing did), so `/queues` and `/readyz` stay O(changes).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._queues: dict[str, str] = {}

    def counts(self, store: Store, settings: Settings) -> dict[str, int]:
        with self._lock:
            if self._seq is None:
                seq = store.change_seq()
                self._queues = {}
                for record in store.all_entries():
                    self._apply(record, settings)
                self._seq = seq
            elif store.change_seq() != self._seq:
                seq, changed, deleted = store.changes_since(self._seq)
                for record in changed:
                    self._apply(record, settings)
                for name in deleted:
                    self._queues.pop(name, None)
                self._seq = seq
            counts: dict[str, int] = {}
            for queue in self._queues.values():
                counts[queue] = counts.get(queue, 0) + 1
            return counts

    def _apply(self, record: EntryRecord, settings: Settings) -> None:
        if record.active:
            self._queues[record.name] = resolve_queue(record.definition, settings)
        else:
            self._queues.pop(record.name, None)


@dataclass(frozen=True)
class QueueView:
    name: str
    type: QueueType
    priority: int
    default: bool
    max_priority: int | None
    exists: bool
    messages: int
    consumers: int
    routed_entries: int

    @property
    def unattended(self) -> bool:
        """Entries are routed here but no worker consumes it: the runs will pile up."""
        return self.routed_entries > 0 and self.consumers == 0


def queue_views(
    settings: Settings, statuses: Mapping[str, QueueStatus], routed: Mapping[str, int]
) -> list[QueueView]:
    views = []
    for name, declared in settings.queues.items():
        status = statuses.get(name, QueueStatus(name, exists=False, messages=0, consumers=0))
        views.append(
            QueueView(
                name=name,
                type=declared.type,
                priority=declared.priority,
                default=name == settings.default_queue,
                max_priority=declared.max_priority,
                exists=status.exists,
                messages=status.messages,
                consumers=status.consumers,
                routed_entries=routed.get(name, 0),
            )
        )
    return views
