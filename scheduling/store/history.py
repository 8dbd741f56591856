"""The audit trail of schedule entries: who created, changed, paused, resumed, ran or deleted one.

Definition changes are written in the same transaction as the change itself (by
`scheduling.store.entries` and `scheduling.store.sync` through `write_history`), so no change
lands without its record and no record exists for a change that was rolled back. A definition
is kept as stored (its JSON without defaults): arguments that name a secret by reference stay
references, because the store never held anything else.

Who is a short text chosen by the caller: ``token:<name>`` for the API, ``dashboard:<name>``
for a dashboard user (the name of the token they signed in with), ``settings:<path>`` for a
sync from a settings file, ``cli:<user>`` for a command run by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import Connection, delete, select

from scheduling.store.database import Database
from scheduling.store.rows import chunks
from scheduling.store.schema import entry_history, sqlite_text

__all__ = [
    "HISTORY_ACTIONS",
    "EntryHistory",
    "HistoryAction",
    "HistoryRecord",
    "HistoryRow",
    "definition_changes",
    "write_history",
]

HistoryAction = Literal["create", "update", "delete", "pause", "resume", "run_now", "backfill"]
HISTORY_ACTIONS: Final = ("create", "update", "delete", "pause", "resume", "run_now", "backfill")
_ACTOR_LENGTH = 255


@dataclass(frozen=True)
class HistoryRecord:
    """One recorded change. `details` depends on the action:

    create, delete: ``{"definition": {...}}`` (as stored, defaults left out); update:
    ``{"changes": {field: {"from": old, "to": new}}}`` where null means "the default"; run_now:
    ``{"task_id": ...}``; backfill: ``{"from", "to", "slots", "task_ids"}``; pause, resume: ``{}``.
    """

    id: int
    entry: str
    at: datetime
    action: str
    actor: str
    details: dict[str, Any]


@dataclass(frozen=True)
class HistoryRow:
    """A change to record: what `write_history` takes.

    `details` may come already serialised (a str of JSON): a sync of 100k entries then wraps
    each stored definition text instead of parsing and dumping it again.
    """

    entry: str
    action: HistoryAction
    actor: str
    details: Mapping[str, Any] | str


def definition_changes(old_json: str, new_json: str) -> dict[str, dict[str, Any]]:
    """Field-by-field difference of two stored definitions; a missing field is the default."""
    old, new = json.loads(old_json), json.loads(new_json)
    return {
        field: {"from": old.get(field), "to": new.get(field)}
        for field in sorted(old.keys() | new.keys())
        if old.get(field) != new.get(field)
    }


def stored_definition(text: str) -> str:
    """The details of a create or delete: the definition as stored, without re-parsing it."""
    return '{"definition":' + text + "}"


_SQLITE_INSERT = (
    "INSERT INTO periodic_entry_history (entry, at, action, actor, details) VALUES (?, ?, ?, ?, ?)"
)


def write_history(conn: Connection, rows: Sequence[HistoryRow], at: datetime) -> None:
    """Record `rows` inside the caller's write transaction (driver-level bulk on SQLite)."""
    if not rows:
        return
    values = [
        (
            row.entry,
            row.action,
            row.actor[:_ACTOR_LENGTH],
            row.details
            if isinstance(row.details, str)
            else json.dumps(row.details, separators=(",", ":"), sort_keys=True),
        )
        for row in rows
    ]
    if conn.dialect.name == "sqlite":
        stamp = sqlite_text(at)
        params = [
            (entry, stamp, action, actor, details) for entry, action, actor, details in values
        ]
        for part in chunks(params):
            conn.exec_driver_sql(_SQLITE_INSERT, list(part))
        return
    mapped = [
        {"entry": entry, "at": at, "action": action, "actor": actor, "details": details}
        for entry, action, actor, details in values
    ]
    for part in chunks(mapped):
        conn.execute(entry_history.insert(), list(part))


class EntryHistory:
    """Reading and pruning the trail, and recording changes that own no entry write.

    Mixed into `Store`, which provides `_db`.
    """

    _db: Database

    def record_entry_action(
        self, entry: str, action: HistoryAction, actor: str, details: Mapping[str, Any]
    ) -> None:
        """Record an action that changed no definition (run now, backfill) on its own."""
        with self._db.write() as conn:
            write_history(conn, [HistoryRow(entry, action, actor, details)], datetime.now(UTC))

    def entry_history(
        self, entry: str, *, before_id: int | None = None, limit: int = 50
    ) -> list[HistoryRecord]:
        """The entry's recorded changes, newest first; `before_id` pages further back.

        The trail outlives the entry: a deleted entry's history is still answered.
        """
        statement = (
            select(
                entry_history.c.id,
                entry_history.c.entry,
                entry_history.c.at,
                entry_history.c.action,
                entry_history.c.actor,
                entry_history.c.details,
            )
            .where(entry_history.c.entry == entry)
            .order_by(entry_history.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            statement = statement.where(entry_history.c.id < before_id)
        with self._db.read() as conn:
            rows = conn.execute(statement).all()
        return [
            HistoryRecord(
                id=int(row.id),
                entry=str(row.entry),
                at=row.at,
                action=str(row.action),
                actor=str(row.actor),
                details=json.loads(row.details),
            )
            for row in rows
        ]

    def purge_history(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        """Delete records made before `older_than`, in short transactions; return how many."""
        purged = 0
        while True:
            with self._db.write() as conn:
                ids = list(
                    conn.execute(
                        select(entry_history.c.id)
                        .where(entry_history.c.at < older_than)
                        .order_by(entry_history.c.id)
                        .limit(batch_size)
                    ).scalars()
                )
                if ids:
                    conn.execute(delete(entry_history).where(entry_history.c.id.in_(ids)))
            purged += len(ids)
            if len(ids) < batch_size:
                return purged
