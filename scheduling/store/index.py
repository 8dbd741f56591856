"""Beat's due index: when each entry is due, read from plain columns, definitions on demand.

Beat needs every entry's timing at start-up and take-over but an entry's definition only when
that entry falls due. Parsing and keeping 100k definitions made start-up and memory grow with
the number of distinct definitions, so `entry_index()` streams just the columns that decide
*when* (no JSON parsing) and `get_entries()` fetches the full records of the few due ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select

from scheduling.store.database import Database
from scheduling.store.records import EntryRecord
from scheduling.store.rows import ENTRY_COLUMNS, chunks, records_from_rows
from scheduling.store.schema import entries

INDEX_BATCH = 20_000
"""Rows per read transaction while streaming: short transactions, few round trips."""

NO_JITTER = timedelta(0)

_INDEX_COLUMNS = (
    entries.c.name,
    entries.c.next_run_at,
    entries.c.enabled,
    entries.c.paused,
    entries.c.jitter_us,
    entries.c.version,
)


_POSTGRESQL_INDEX = (
    "SELECT name, next_run_at, enabled AND NOT paused, jitter_us, version "
    "FROM periodic_entries WHERE name > %(after)s ORDER BY name LIMIT %(limit)s"
)


class EntryIndexRow(NamedTuple):
    """What decides when an entry is due; a tuple, since beat keeps one per entry."""

    name: str
    next_run_at: datetime | None
    active: bool
    """The definition is enabled and the entry is not paused."""
    jitter: timedelta
    version: int

    @classmethod
    def of(cls, record: EntryRecord) -> EntryIndexRow:
        """The index row of a full record (change feed rows, fetched records)."""
        return cls(
            record.name,
            record.next_run_at,
            record.active,
            record.definition.jitter,
            record.version,
        )


def _jitter_of(microseconds: int, known: dict[int, timedelta]) -> timedelta:
    """One shared timedelta per distinct jitter value (most entries have none)."""
    jitter = known.get(microseconds)
    if jitter is None:
        jitter = known[microseconds] = timedelta(microseconds=microseconds)
    return jitter


class EntryIndex:
    """The due index reads; mixed into `Store`, which provides `_db`."""

    _db: Database

    def entry_index(self) -> Iterator[EntryIndexRow]:
        """Every entry's index row by name, in batches of short read transactions."""
        if self._db.is_postgresql:
            yield from self._entry_index_postgresql()
            return
        known: dict[int, timedelta] = {0: NO_JITTER}
        after: str | None = None
        while True:
            statement = select(*_INDEX_COLUMNS).order_by(entries.c.name).limit(INDEX_BATCH)
            if after is not None:
                statement = statement.where(entries.c.name > after)
            with self._db.read() as conn:
                rows = conn.execute(statement).all()
            for name, next_run_at, enabled, paused, jitter_us, version in rows:
                yield EntryIndexRow(
                    name,
                    next_run_at,
                    bool(enabled) and not paused,
                    _jitter_of(jitter_us, known),
                    version,
                )
            if len(rows) < INDEX_BATCH:
                return
            after = rows[-1][0]

    def _entry_index_postgresql(self) -> Iterator[EntryIndexRow]:
        """The same rows through the driver's own cursor: psycopg already returns the values
        beat keeps, so skipping the result layer halves a 100k take-over."""
        known: dict[int, timedelta] = {0: NO_JITTER}
        after = ""
        while True:
            with self._db.read() as conn:
                parameters = {"after": after, "limit": INDEX_BATCH}
                cursor = conn.exec_driver_sql(_POSTGRESQL_INDEX, parameters).cursor
                assert cursor is not None
                rows = cursor.fetchall()
            for name, next_run_at, active, jitter_us, version in rows:
                yield EntryIndexRow(
                    name,
                    None if next_run_at is None else next_run_at.replace(tzinfo=UTC),
                    active,
                    _jitter_of(jitter_us, known),
                    version,
                )
            if len(rows) < INDEX_BATCH:
                return
            after = rows[-1][0]

    def get_entries(self, names: Iterable[str]) -> list[EntryRecord]:
        """The full records of `names` (unknown names and invalid definitions left out).

        One read transaction, one IN query per chunk of names; in the order of `names`.
        """
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        found: dict[str, EntryRecord] = {}
        with self._db.read() as conn:
            for part in chunks(wanted):
                rows = conn.execute(select(*ENTRY_COLUMNS).where(entries.c.name.in_(part))).all()
                found.update((record.name, record) for record in records_from_rows(rows))
        return [found[name] for name in wanted if name in found]
