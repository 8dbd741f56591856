"""Rows to records: the column lists the store selects and the conversions of their rows.

Definitions are stored as compact JSON and parsed through a cache keyed by the JSON text, since
many entries share one definition shape and beat start-up parses every row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, select

from scheduling.config.bounds import STORED
from scheduling.config.settings import ScheduleEntry
from scheduling.store.records import EntryRecord, Owner, RunRecord, RunState
from scheduling.store.schema import entries, runs

logger = logging.getLogger(__name__)

CHUNK = 2000
"""Rows per executemany batch / IN list: small enough for any driver's parameter limit."""
STREAM_BATCH = 5000
_MICROSECOND = timedelta(microseconds=1)

ENTRY_COLUMNS = (
    entries.c.name,
    entries.c.owner,
    entries.c.definition,
    entries.c.paused,
    entries.c.next_run_at,
    entries.c.last_slot,
    entries.c.run_count,
    entries.c.version,
    entries.c.change_seq,
    entries.c.created_at,
    entries.c.updated_at,
)


def definition_json(definition: ScheduleEntry) -> str:
    """Compact, deterministic JSON of a definition: what is stored and compared on sync."""
    return definition.model_dump_json(exclude_defaults=True)


def jitter_us(definition: ScheduleEntry) -> int:
    """The `jitter_us` column: the definition's jitter in whole microseconds."""
    return definition.jitter // _MICROSECOND


@lru_cache(maxsize=65_536)
def parse_definition(text: str) -> ScheduleEntry:
    """A stored definition, by the same model as a `[schedule.<name>]` table.

    Bounds are not re-checked (`STORED`): they guard writes, and an entry written before a bound
    tightened stays readable; beat isolates whatever such an entry breaks.
    """
    return ScheduleEntry.model_validate_json(text, context=STORED)


def entry_from_row(row: Sequence[Any]) -> EntryRecord:
    owner: Owner = "config" if row[1] == "config" else "api"
    return EntryRecord(
        name=row[0],
        owner=owner,
        definition=parse_definition(row[2]),
        paused=bool(row[3]),
        next_run_at=row[4],
        last_slot=row[5],
        run_count=row[6],
        version=row[7],
        change_seq=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def records_from_rows(rows: Iterable[Sequence[Any]]) -> Iterator[EntryRecord]:
    """Records for `rows`; a row whose definition no longer validates is logged and skipped."""
    for row in rows:
        try:
            yield entry_from_row(row)
        except ValidationError as error:
            logger.error("skipping entry %r: its stored definition is invalid: %s", row[0], error)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


RUN_COLUMNS = (
    runs.c.id,
    runs.c.entry,
    runs.c.scheduled_for,
    runs.c.task_id,
    runs.c.state,
    runs.c.manual,
    runs.c.queue,
    runs.c.claimed_at,
    runs.c.dispatched_at,
    runs.c.started_at,
    runs.c.finished_at,
    runs.c.runtime,
    runs.c.hostname,
    runs.c.error_type,
    runs.c.error_message,
    runs.c.retries,
)


def run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        entry=row[1],
        scheduled_for=row[2],
        task_id=row[3],
        state=RunState(row[4]),
        manual=bool(row[5]),
        queue=row[6],
        claimed_at=row[7],
        dispatched_at=row[8],
        started_at=row[9],
        finished_at=row[10],
        runtime=row[11],
        hostname=row[12],
        error_type=row[13],
        error_message=row[14],
        retries=row[15],
    )


def run_by_task_id(conn: Connection, task_id: str) -> RunRecord | None:
    row = conn.execute(select(*RUN_COLUMNS).where(runs.c.task_id == task_id)).one_or_none()
    return None if row is None else run_from_row(row)
