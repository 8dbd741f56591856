"""Tables, the UTC column type and the ordered migration steps that `Store.open()` applies.

Every table is prefixed ``periodic_`` so the store can share a database with an application.
The schema version lives in ``periodic_schema``; steps run in order inside one transaction that
holds a lock (a PostgreSQL advisory lock, an immediate transaction on SQLite), so several beats,
workers and web processes may open the same fresh database at once.

Steps are frozen once released: a later schema change is a new step, never an edit of an old one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

from scheduling.config.bounds import STORED
from scheduling.config.settings import ScheduleEntry
from scheduling.errors import StoreError

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
NAME_LENGTH = 200
_ADVISORY_LOCK_KEY = 0x5045_5249_4F44  # "PERIOD": serializes migrations across processes
_SQLITE_DIALECT = sqlite.dialect()


class _SQLiteDateTime(UserDefinedType[str]):
    """SQLite's DATETIME column as the driver sees it: ISO text we format and parse ourselves.

    SQLAlchemy's own SQLite DATETIME formats in Python per value; `datetime.isoformat` and
    `datetime.fromisoformat` are C and keep a 10k-slot claim cheap. Same text layout
    (``YYYY-MM-DD HH:MM:SS.ffffff``), so values sort and compare as text.
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"


def sqlite_text(value: datetime) -> str:
    """How a UTCDateTime column stores `value` on SQLite, for the driver-level bulk insert."""
    text = _UTC_DATETIME.process_bind_param(value, _SQLITE_DIALECT)
    assert isinstance(text, str)
    return text


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database: one meaning on every dialect.

    A naive datetime is refused rather than guessed, because a local time silently stored as
    UTC is a schedule that fires hours off.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLiteDateTime()
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is not UTC:
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(
                    f"naive datetime {value.isoformat()} given to the store; pass aware UTC"
                )
            value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.isoformat(sep=" ", timespec="microseconds")[:26]
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime | None]:
        # One plain function per value instead of TypeDecorator's chain: beat start-up reads
        # four of these per entry, 100k entries at a time.
        parse = datetime.fromisoformat

        if dialect.name == "sqlite":

            def from_text(value: str | None) -> datetime | None:
                # Appending the offset is several times faster than .replace(tzinfo=UTC).
                return None if value is None else parse(value + "+00:00")

            return from_text

        def from_naive(value: datetime | None) -> datetime | None:
            return None if value is None else value.replace(tzinfo=UTC)

        return from_naive


_UTC_DATETIME = UTCDateTime()

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
RowId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

schema_versions = Table(
    "periodic_schema",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

changes = Table(
    "periodic_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
)
"""One row (id 1): the global change sequence. Bumping it row-locks, so seq order = commit order."""

entries = Table(
    "periodic_entries",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    Column("owner", String(8), nullable=False),
    Column("definition", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    # Derived from the definition on every write (v2), so beat can build its due index from
    # plain columns without parsing a definition per entry.
    Column("jitter_us", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("next_run_at", UTCDateTime, nullable=True),
    Column("last_slot", UTCDateTime, nullable=True),
    Column("run_count", Integer, nullable=False, default=0),
    Column("version", Integer, nullable=False, default=1),
    Column("change_seq", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_periodic_entries_next_run_at", "next_run_at"),
    Index("ix_periodic_entries_change_seq", "change_seq"),
)

tombstones = Table(
    "periodic_tombstones",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    Column("change_seq", BigInteger, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=False),
    Index("ix_periodic_tombstones_change_seq", "change_seq"),
)
"""Deleted entry names, so `changes_since` can report deletions; removed when a name returns."""

runs = Table(
    "periodic_runs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("entry", String(NAME_LENGTH), nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("task_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("manual", Boolean, nullable=False, default=False),
    Column("queue", String(200), nullable=True),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime, nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("runtime", Float, nullable=True),
    Column("hostname", String(255), nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("retries", Integer, nullable=False, default=0),
    # `manual` is part of the slot key so that a "run now" at a slot's exact instant can never
    # take that slot away from beat.
    UniqueConstraint("entry", "scheduled_for", "manual", name="uq_periodic_runs_slot"),
    UniqueConstraint("task_id", name="uq_periodic_runs_task_id"),
    Index("ix_periodic_runs_state", "state"),
    Index("ix_periodic_runs_entry_state", "entry", "state"),
    Index("ix_periodic_runs_entry_id", "entry", text("id DESC")),
    Index("ix_periodic_runs_finished_at", "finished_at"),
)

lease = Table(
    "periodic_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
)
"""One row (name "beat"); holder "" means released. The token survives release and only grows."""

beats = Table(
    "periodic_beats",
    metadata,
    Column("beat_id", String(255), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("role", String(8), nullable=False),
    Column("last_tick", UTCDateTime, nullable=False),
    Column("lag", Float, nullable=True),
)

deliveries = Table(
    "periodic_deliveries",
    metadata,
    Column("task_id", String(255), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Index("ix_periodic_deliveries_last_at", "last_at"),
)
"""How often a worker received each task id; past worker.max_deliveries it dead-letters."""

entry_history = Table(
    "periodic_entry_history",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("entry", String(NAME_LENGTH), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("details", Text, nullable=False),
    Index("ix_periodic_entry_history_entry_id", "entry", text("id DESC")),
    Index("ix_periodic_entry_history_at", "at"),
)
"""Who changed which entry, when and how (v3); kept as long as finished runs (`purge_runs`)."""

lease_terms = Table(
    "periodic_lease_terms",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("holder", String(255), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Index("ix_periodic_lease_terms_started_at", "started_at"),
)
"""Each stretch one beat led (v3): written only when leadership changes, never per renewal. An
open term (no ended_at) lasts until the lease's expires_at; "no term covers instant t" is how
the explain feature knows that no beat was leading at t."""

outages = Table(
    "periodic_outages",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("dependency", String(16), nullable=False),
    Column("beat_id", String(255), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Index("ix_periodic_outages_started_at", "started_at"),
)
"""When the leading beat could not reach the broker (v3), so a missed slot can say so."""

entry_faults = Table(
    "periodic_entry_faults",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    Column("message", Text, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("retry_at", UTCDateTime, nullable=True),
)
"""Entries beat could not schedule (v4): the error, how often, and when beat tries again."""

revoked_sessions = Table(
    "periodic_revoked_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_periodic_revoked_sessions_expires_at", "expires_at"),
)
"""Dashboard sessions ended by signing out (v4), until their cookie would have expired anyway."""

LEASE_NAME = "beat"


def _create_v1(conn: Connection) -> None:
    now = datetime.now(UTC)
    metadata.create_all(conn, tables=[changes, entries, tombstones, runs, lease, beats, deliveries])
    conn.execute(insert(changes).values(id=1, seq=0))
    conn.execute(
        insert(lease).values(
            name=LEASE_NAME, holder="", token=0, expires_at=UNIX_EPOCH, acquired_at=now
        )
    )


def _add_jitter_v2(conn: Connection) -> None:
    """Add `jitter_us` (v1 stores) and back-fill it from each stored definition.

    The v1 step builds tables from the current metadata, so on a fresh database the column is
    already there; only a store created by an earlier release gets the ALTER. Definitions are
    stored without their defaults, so only rows whose JSON names a jitter need parsing.
    """
    found = {column["name"] for column in inspect(conn).get_columns(entries.name)}
    if "jitter_us" not in found:
        conn.execute(
            text(f"ALTER TABLE {entries.name} ADD COLUMN jitter_us BIGINT NOT NULL DEFAULT 0")
        )
    rows = conn.execute(
        select(entries.c.name, entries.c.definition).where(entries.c.definition.like('%"jitter"%'))
    ).all()
    params = []
    for name, definition in rows:
        try:
            jitter = ScheduleEntry.model_validate_json(definition, context=STORED).jitter
        except ValidationError:
            continue  # beat skips such a row anyway, and logs it when it falls due
        params.append({"b_name": name, "b_jitter_us": jitter // _MICROSECOND})
    if params:
        conn.execute(
            update(entries)
            .where(entries.c.name == bindparam("b_name"))
            .values(jitter_us=bindparam("b_jitter_us")),
            params,
        )


def _add_history_v3(conn: Connection) -> None:
    """Entry changes, leadership terms, broker outages; nothing earlier was recorded."""
    entry_history.create(conn, checkfirst=True)
    lease_terms.create(conn, checkfirst=True)
    outages.create(conn, checkfirst=True)


def _add_faults_and_revocations_v4(conn: Connection) -> None:
    entry_faults.create(conn, checkfirst=True)
    revoked_sessions.create(conn, checkfirst=True)


MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = (
    (1, _create_v1),
    (2, _add_jitter_v2),
    (3, _add_history_v3),
    (4, _add_faults_and_revocations_v4),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(conn: Connection) -> int:
    """Bring the schema up to `SCHEMA_VERSION` inside the caller's write transaction.

    Returns the version found before migrating (0 for an empty database).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
    schema_versions.create(conn, checkfirst=True)
    found = conn.execute(select(func.max(schema_versions.c.version))).scalar_one() or 0
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the store's schema is version {found}, newer than this Periodic knows "
            f"({SCHEMA_VERSION}); upgrade Periodic before opening it"
        )
    for version, step in MIGRATIONS:
        if version > found:
            step(conn)
            conn.execute(
                insert(schema_versions).values(version=version, applied_at=datetime.now(UTC))
            )
    return int(found)
