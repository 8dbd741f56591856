"""One entry as a schedule's page shows it, read with one statement: `GET /schedules/{name}`.

The view of an entry needs its row, its newest run, its newest dispatched run and its fault.
Read one by one that was three read transactions, each a pool checkout, a BEGIN, a statement
built anew (SQLAlchemy constructs, then looks up its compiled form by a key it computes over
the whole statement tree) and a COMMIT: on PostgreSQL a dozen round trips per request. Here it
is one SELECT, two correlated subqueries walking the ``(entry, id DESC)`` index, built once at
import and executed with a bound name, so SQLAlchemy reuses its memoised cache key and compiled
form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.sql.expression import bindparam

from scheduling.errors import UnreadableEntry
from scheduling.store.database import Database
from scheduling.store.records import LEDGER_ONLY_STATES, EntryFault, EntryRecord, RunRecord
from scheduling.store.rows import ENTRY_COLUMNS, RUN_COLUMNS, entry_from_row, run_from_row
from scheduling.store.schema import entries, entry_faults, runs

__all__ = ["EntrySnapshot", "EntrySnapshots"]

_LEDGER_ONLY = sorted(state.value for state in LEDGER_ONLY_STATES)


@dataclass(frozen=True, slots=True)
class EntrySnapshot:
    """An entry with what its view shows beside the definition, read in one statement."""

    record: EntryRecord
    newest: RunRecord | None
    """Its newest run in any state (a missed or skipped slot included)."""
    last: RunRecord | None
    """Its newest run that was (or is being) dispatched."""
    fault: EntryFault | None


def _snapshot_statement() -> Select[Any]:
    newest_run = runs.alias("newest_run")
    last_run = runs.alias("last_run")
    newest_id = (
        select(runs.c.id)
        .where(runs.c.entry == entries.c.name)
        .order_by(runs.c.id.desc())
        .limit(1)
        .correlate(entries)
        .scalar_subquery()
    )
    last_id = (
        select(runs.c.id)
        .where(runs.c.entry == entries.c.name, runs.c.state.not_in(_LEDGER_ONLY))
        .order_by(runs.c.id.desc())
        .limit(1)
        .correlate(entries)
        .scalar_subquery()
    )
    fault_columns = (
        entry_faults.c.name,
        entry_faults.c.message,
        entry_faults.c.failures,
        entry_faults.c.since,
        entry_faults.c.retry_at,
    )
    return (
        select(
            *ENTRY_COLUMNS,
            *(newest_run.c[column.name] for column in RUN_COLUMNS),
            *(last_run.c[column.name] for column in RUN_COLUMNS),
            *fault_columns,
        )
        .select_from(entries)
        .outerjoin(newest_run, newest_run.c.id == newest_id)
        .outerjoin(last_run, last_run.c.id == last_id)
        .outerjoin(entry_faults, entry_faults.c.name == entries.c.name)
        .where(entries.c.name == bindparam("snapshot_name"))
    )


_SNAPSHOT = _snapshot_statement()
_ENTRY_END = len(ENTRY_COLUMNS)
_NEWEST_END = _ENTRY_END + len(RUN_COLUMNS)
_LAST_END = _NEWEST_END + len(RUN_COLUMNS)


def _run_or_none(values: Sequence[Any]) -> RunRecord | None:
    return None if values[0] is None else run_from_row(values)


class EntrySnapshots:
    """`entry_snapshot`; mixed into `Store`, which provides `_db`."""

    _db: Database

    def entry_snapshot(self, name: str) -> EntrySnapshot | None:
        """The entry, its newest and last dispatched runs and its fault; None if no such entry.

        Raises `UnreadableEntry` for a stored definition that no longer parses, like
        `get_entry`.
        """
        with self._db.read() as conn:
            row = conn.execute(_SNAPSHOT, {"snapshot_name": name}).one_or_none()
        if row is None:
            return None
        try:
            record = entry_from_row(row[:_ENTRY_END])
        except ValidationError as error:
            raise UnreadableEntry(
                f"entry {name!r} has a stored definition that does not parse "
                f"({error.error_count()} problems); delete it or write it again"
            ) from error
        fault = row[_LAST_END:]
        return EntrySnapshot(
            record=record,
            newest=_run_or_none(row[_ENTRY_END:_NEWEST_END]),
            last=_run_or_none(row[_NEWEST_END:_LAST_END]),
            fault=None if fault[0] is None else EntryFault(*fault),
        )
