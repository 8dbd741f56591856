"""Bulk entry writes: settings.toml into the store (`sync_config`) and benchmark loading.

Both run as one transaction with chunked executemany, so 100k entries take seconds, and a
sync either lands whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Connection, select, update
from sqlalchemy.sql.expression import bindparam

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import ConfigError
from scheduling.store.changes import ChangeFeed, bump_change_seq
from scheduling.store.history import (
    HistoryRow,
    definition_changes,
    stored_definition,
    write_history,
)
from scheduling.store.records import Owner, SyncSummary
from scheduling.store.rows import chunks, definition_json, jitter_us
from scheduling.store.schema import entries


class ConfigSync(ChangeFeed):
    """Bulk writes; mixed into `Store`, which provides `_db`."""

    def sync_config(
        self,
        entries_in: Mapping[str, ScheduleEntry],
        next_runs: Mapping[str, datetime | None],
        *,
        actor: str = "settings.toml",
    ) -> SyncSummary:
        """Make the config-owned rows equal `entries_in`, in one transaction.

        New names are created, changed definitions (by JSON) replaced with their `next_runs`
        value, missing names pruned; unchanged rows keep their next_run_at and progress. API-owned
        rows and every pause flag are left alone. A config name that an API entry already uses
        is a ConfigError naming it, and nothing is written. Each created, changed and pruned
        entry gets a history record by `actor` (``settings:<path>``), in the same transaction.
        """
        wanted = {name: definition_json(definition) for name, definition in entries_in.items()}
        now = datetime.now(UTC)
        with self._db.write() as conn:
            existing = {
                str(name): (str(owner), str(text))
                for name, owner, text in conn.execute(
                    select(entries.c.name, entries.c.owner, entries.c.definition)
                )
            }
            clashes = sorted(
                name for name in wanted if name in existing and existing[name][0] != "config"
            )
            if clashes:
                raise ConfigError(
                    "settings.toml",
                    [
                        f"schedule.{name}: an entry named {name!r} was created through the API; "
                        "rename the settings entry or delete the API entry first"
                        for name in clashes
                    ],
                )
            created = sorted(name for name in wanted if name not in existing)
            updated = sorted(
                name for name in wanted if name in existing and existing[name][1] != wanted[name]
            )
            pruned = sorted(
                name
                for name, (owner, _) in existing.items()
                if owner == "config" and name not in wanted
            )
            touched = len(created) + len(updated) + len(pruned)
            if touched:
                first = bump_change_seq(conn, touched) - touched + 1
                self._insert_entries(
                    conn,
                    [(name, entries_in[name], next_runs.get(name)) for name in created],
                    owner="config",
                    first_seq=first,
                    now=now,
                )
                self._update_definitions(
                    conn,
                    [
                        (
                            name,
                            wanted[name],
                            entries_in[name].enabled,
                            jitter_us(entries_in[name]),
                            next_runs.get(name),
                        )
                        for name in updated
                    ],
                    first_seq=first + len(created),
                    now=now,
                )
                self._bury(conn, pruned, first + len(created) + len(updated), now)
                write_history(
                    conn, _sync_history(created, updated, pruned, wanted, existing, actor), now
                )
        return SyncSummary(
            created=created,
            updated=updated,
            pruned=pruned,
            unchanged=len(wanted) - len(created) - len(updated),
        )

    def bulk_create_entries(
        self,
        rows: Sequence[tuple[str, ScheduleEntry, datetime | None]],
        *,
        owner: Literal["config", "api"] = "api",
    ) -> int:
        """Create many entries in one transaction; names already taken are left alone.

        Returns how many were created.
        """
        now = datetime.now(UTC)
        with self._db.write() as conn:
            taken = {
                str(name)
                for part in chunks([row[0] for row in rows])
                for name in conn.execute(
                    select(entries.c.name).where(entries.c.name.in_(part))
                ).scalars()
            }
            fresh: list[tuple[str, ScheduleEntry, datetime | None]] = []
            for row in rows:
                if row[0] not in taken:
                    taken.add(row[0])
                    fresh.append(row)
            if fresh:
                first = bump_change_seq(conn, len(fresh)) - len(fresh) + 1
                self._insert_entries(conn, fresh, owner=owner, first_seq=first, now=now)
        return len(fresh)

    def _insert_entries(
        self,
        conn: Connection,
        rows: Sequence[tuple[str, ScheduleEntry, datetime | None]],
        *,
        owner: Owner,
        first_seq: int,
        now: datetime,
    ) -> None:
        if not rows:
            return
        json_of: dict[int, str] = {}
        params = []
        for offset, (name, definition, next_run_at) in enumerate(rows):
            # Bulk callers often pass one definition object for many names: dump it once.
            text = json_of.get(id(definition))
            if text is None:
                text = json_of[id(definition)] = definition_json(definition)
            params.append(
                {
                    "name": name,
                    "owner": owner,
                    "definition": text,
                    "enabled": definition.enabled,
                    "jitter_us": jitter_us(definition),
                    "paused": False,
                    "next_run_at": next_run_at,
                    "last_slot": None,
                    "run_count": 0,
                    "version": 1,
                    "change_seq": first_seq + offset,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for part in chunks(params):
            conn.execute(entries.insert(), list(part))
        self._forget_tombstones(conn, [row[0] for row in rows])

    def _update_definitions(
        self,
        conn: Connection,
        rows: Sequence[tuple[str, str, bool, int, datetime | None]],
        *,
        first_seq: int,
        now: datetime,
    ) -> None:
        if not rows:
            return
        statement = (
            update(entries)
            .where(entries.c.name == bindparam("b_name"))
            .values(
                definition=bindparam("b_definition"),
                enabled=bindparam("b_enabled"),
                jitter_us=bindparam("b_jitter_us"),
                next_run_at=bindparam("b_next_run_at"),
                version=entries.c.version + 1,
                change_seq=bindparam("b_change_seq"),
                updated_at=bindparam("b_updated_at"),
            )
        )
        params = [
            {
                "b_name": name,
                "b_definition": text,
                "b_enabled": enabled,
                "b_jitter_us": jitter,
                "b_next_run_at": next_run_at,
                "b_change_seq": first_seq + offset,
                "b_updated_at": now,
            }
            for offset, (name, text, enabled, jitter, next_run_at) in enumerate(rows)
        ]
        for part in chunks(params):
            conn.execute(statement, list(part))


def _sync_history(
    created: Sequence[str],
    updated: Sequence[str],
    pruned: Sequence[str],
    wanted: Mapping[str, str],
    existing: Mapping[str, tuple[str, str]],
    actor: str,
) -> list[HistoryRow]:
    rows = [HistoryRow(name, "create", actor, stored_definition(wanted[name])) for name in created]
    rows.extend(
        HistoryRow(
            name, "update", actor, {"changes": definition_changes(existing[name][1], wanted[name])}
        )
        for name in updated
    )
    rows.extend(
        HistoryRow(name, "delete", actor, stored_definition(existing[name][1])) for name in pruned
    )
    return rows
