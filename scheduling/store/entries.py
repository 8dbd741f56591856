"""Schedule entries: reads, and the single-entry writes behind the API and CLI.

API writes refuse config-owned entries (`ConfigOwnedEntry`, pointing at settings.toml), since
the next sync would silently undo them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Connection, cast, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import (
    ConfigOwnedEntry,
    EntryExists,
    EntryNotFound,
    UnreadableEntry,
)
from scheduling.store.changes import ChangeFeed, bump_change_seq
from scheduling.store.history import (
    HistoryAction,
    HistoryRow,
    definition_changes,
    stored_definition,
    write_history,
)
from scheduling.store.records import EntryRecord
from scheduling.store.rows import (
    ENTRY_COLUMNS,
    STREAM_BATCH,
    definition_json,
    entry_from_row,
    jitter_us,
    records_from_rows,
)
from scheduling.store.schema import entries


@dataclass(frozen=True)
class QueueMatch:
    """The entries whose messages go to `queue`: those whose definition names it, and those
    that name no queue and whose task is one of `routed_tasks` (the tasks the settings' routes,
    or the default queue, send there; decided by the caller, which holds the settings)."""

    queue: str
    routed_tasks: frozenset[str]


def config_owned_message(name: str) -> str:
    return f"entry {name!r} is declared in settings.toml; change it there"


class EntryOperations(ChangeFeed):
    """Entry reads and writes; mixed into `Store`, which provides `_db`."""

    def _lock_entry_owner(self, conn: Connection, name: str) -> str:
        statement = select(entries.c.owner).where(entries.c.name == name)
        if self._db.is_postgresql:
            statement = statement.with_for_update()
        owner = conn.execute(statement).scalar_one_or_none()
        if owner is None:
            raise EntryNotFound(f"entry {name!r} does not exist")
        return str(owner)

    def _select_entry(self, conn: Connection, name: str) -> EntryRecord:
        row = conn.execute(select(*ENTRY_COLUMNS).where(entries.c.name == name)).one_or_none()
        if row is None:
            raise EntryNotFound(f"entry {name!r} does not exist")
        try:
            return entry_from_row(row)
        except ValidationError as error:
            raise UnreadableEntry(
                f"entry {name!r} has a stored definition that does not parse "
                f"({error.error_count()} problems); delete it or write it again"
            ) from error

    def get_entry(self, name: str) -> EntryRecord | None:
        with self._db.read() as conn:
            try:
                return self._select_entry(conn, name)
            except EntryNotFound:
                return None

    def entry_exists(self, name: str) -> bool:
        with self._db.read() as conn:
            found = conn.execute(select(entries.c.name).where(entries.c.name == name)).first()
        return found is not None

    def _definition_field(self, field: str) -> ColumnElement[str]:
        """A top-level field of the stored definition JSON, as text (NULL when absent)."""
        extracted: ColumnElement[str]
        if self._db.is_postgresql:
            extracted = cast(entries.c.definition, JSONB)[field].astext
        else:
            extracted = func.json_extract(entries.c.definition, f"$.{field}")
        return extracted

    def unqueued_tasks(self) -> set[str]:
        """The distinct tasks of entries whose definition names no queue (routes decide)."""
        statement = (
            select(self._definition_field("task"))
            .where(self._definition_field("queue").is_(None))
            .distinct()
        )
        with self._db.read() as conn:
            return {str(task) for task in conn.execute(statement).scalars() if task is not None}

    def list_entries(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        active: bool | None = None,
        owner: str | None = None,
        enabled: bool | None = None,
        queue: QueueMatch | None = None,
    ) -> list[EntryRecord]:
        """A page ordered by name; pass the last name of a page as `after` for the next one.

        Filters are SQL: `enabled` is the definition's flag, `active` also counts pauses,
        `queue` reads the definition's queue and task out of its JSON.
        """
        statement = select(*ENTRY_COLUMNS).order_by(entries.c.name).limit(limit)
        if queue is not None:
            own = self._definition_field("queue")
            routed = own.is_(None) & self._definition_field("task").in_(sorted(queue.routed_tasks))
            statement = statement.where(or_(own == queue.queue, routed))
        if after is not None:
            statement = statement.where(entries.c.name > after)
        if owner is not None:
            statement = statement.where(entries.c.owner == owner)
        if enabled is not None:
            statement = statement.where(entries.c.enabled.is_(enabled))
        if active is True:
            statement = statement.where(entries.c.enabled.is_(True), entries.c.paused.is_(False))
        elif active is False:
            statement = statement.where(
                (entries.c.enabled.is_(False)) | (entries.c.paused.is_(True))
            )
        with self._db.read() as conn:
            rows = conn.execute(statement).all()
        return list(records_from_rows(rows))

    def count_entries(self) -> int:
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(entries)).scalar_one())

    def all_entries(self) -> Iterator[EntryRecord]:
        """Every entry by name, in batches of short transactions (beat start-up, take-over)."""
        after: str | None = None
        while True:
            statement = select(*ENTRY_COLUMNS).order_by(entries.c.name).limit(STREAM_BATCH)
            if after is not None:
                statement = statement.where(entries.c.name > after)
            with self._db.read() as conn:
                rows = conn.execute(statement).all()
            yield from records_from_rows(rows)
            if len(rows) < STREAM_BATCH:
                return
            after = rows[-1][0]

    # --- change feed ---
    def create_entry(
        self,
        name: str,
        definition: ScheduleEntry,
        *,
        owner: Literal["config", "api"] = "api",
        next_run_at: datetime | None,
        actor: str = "unknown",
    ) -> EntryRecord:
        now = datetime.now(UTC)
        text = definition_json(definition)
        with self._db.write() as conn:
            existing = conn.execute(
                select(entries.c.owner).where(entries.c.name == name)
            ).scalar_one_or_none()
            if existing is not None:
                where = " in settings.toml" if existing == "config" else " through the API"
                raise EntryExists(f"entry {name!r} already exists (created{where})")
            seq = bump_change_seq(conn, 1)
            conn.execute(
                entries.insert().values(
                    name=name,
                    owner=owner,
                    definition=text,
                    enabled=definition.enabled,
                    jitter_us=jitter_us(definition),
                    paused=False,
                    next_run_at=next_run_at,
                    last_slot=None,
                    run_count=0,
                    version=1,
                    change_seq=seq,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._forget_tombstones(conn, [name])
            details = stored_definition(text)
            write_history(conn, [HistoryRow(name, "create", actor, details)], now)
            return self._select_entry(conn, name)

    def replace_entry(
        self,
        name: str,
        definition: ScheduleEntry,
        *,
        next_run_at: datetime | None,
        actor: str = "unknown",
    ) -> EntryRecord:
        """Redefine an API-owned entry; pause state, progress and history are kept."""
        text = definition_json(definition)
        now = datetime.now(UTC)
        with self._db.write() as conn:
            if self._lock_entry_owner(conn, name) == "config":
                raise ConfigOwnedEntry(config_owned_message(name))
            before = conn.execute(
                select(entries.c.definition).where(entries.c.name == name)
            ).scalar_one()
            seq = bump_change_seq(conn, 1)
            conn.execute(
                update(entries)
                .where(entries.c.name == name)
                .values(
                    definition=text,
                    enabled=definition.enabled,
                    jitter_us=jitter_us(definition),
                    next_run_at=next_run_at,
                    version=entries.c.version + 1,
                    change_seq=seq,
                    updated_at=now,
                )
            )
            details = {"changes": definition_changes(str(before), text)}
            write_history(conn, [HistoryRow(name, "update", actor, details)], now)
            return self._select_entry(conn, name)

    def delete_entry(self, name: str, *, actor: str = "unknown") -> None:
        """Delete an API-owned entry; its runs stay in the ledger and its history is kept."""
        now = datetime.now(UTC)
        with self._db.write() as conn:
            if self._lock_entry_owner(conn, name) == "config":
                raise ConfigOwnedEntry(config_owned_message(name))
            before = conn.execute(
                select(entries.c.definition).where(entries.c.name == name)
            ).scalar_one()
            seq = bump_change_seq(conn, 1)
            self._bury(conn, [name], seq, now)
            details = stored_definition(str(before))
            write_history(conn, [HistoryRow(name, "delete", actor, details)], now)

    def set_paused(self, name: str, paused: bool, *, actor: str = "unknown") -> EntryRecord:
        """Pause or resume any entry; a no-op write (already in that state) changes nothing."""
        now = datetime.now(UTC)
        with self._db.write() as conn:
            self._lock_entry_owner(conn, name)
            current = self._select_entry(conn, name)
            if current.paused == paused:
                return current
            seq = bump_change_seq(conn, 1)
            conn.execute(
                update(entries)
                .where(entries.c.name == name)
                .values(
                    paused=paused,
                    version=entries.c.version + 1,
                    change_seq=seq,
                    updated_at=now,
                )
            )
            action: HistoryAction = "pause" if paused else "resume"
            write_history(conn, [HistoryRow(name, action, actor, {})], now)
            return self._select_entry(conn, name)

    def set_next_run(self, name: str, next_run_at: datetime | None) -> None:
        """Record scheduling progress (not a definition change: the change feed stays quiet)."""
        with self._db.write() as conn:
            result = conn.execute(
                update(entries)
                .where(entries.c.name == name)
                .values(
                    next_run_at=next_run_at,
                    version=entries.c.version + 1,
                    updated_at=datetime.now(UTC),
                )
            )
            if result.rowcount == 0:
                raise EntryNotFound(f"entry {name!r} does not exist")
