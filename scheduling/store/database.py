"""The engine and its transactions: SQLite tuned for several processes, PostgreSQL via psycopg 3.

Writes on SQLite open with ``BEGIN IMMEDIATE``: the write lock is taken up front and waited for
(busy_timeout), so two beats on one file queue up instead of failing with "database is locked"
when a deferred transaction tries to upgrade its read lock. Reads use a plain deferred BEGIN.
Every SQLAlchemy or driver error leaves this module as `StoreError`, chained to its cause.

SQLite files run in WAL mode with ``synchronous = NORMAL``: a commit is written to the log but
the log is synced to disk only at checkpoints, not on every commit. SQLite serialises writers
across all processes, so with the default (FULL) every claim, confirmation and worker report
would pay one sync inside the write lock (about 0.25 ms here, far more on slow disks). The
trade-off: a committed transaction survives a crash or kill of any process, but the newest ones
may be rolled back by an operating-system crash or power loss (the database itself stays
consistent). After such a crash, a slot claimed just before it can be claimed and published
again, and a manual run can be missing from the ledger although its message was confirmed.
Deployments that need every commit durable against power loss use PostgreSQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    String,
    Table,
    any_,
    create_engine,
    event,
    literal,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import bindparam

from scheduling.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "periodic_begin"


_USERINFO = re.compile(r"^(?P<scheme>[^:/?#]*:)?//(?P<user>[^/?#@]*?)(?::[^/?#@]*)?@")


def masked_url(url: str) -> str:
    """`url` with any password replaced by ``***``, for URLs too malformed to parse."""
    return _USERINFO.sub(lambda m: f"{m['scheme'] or ''}//{m['user']}:***@", url, count=1)


def normalize_url(url: str) -> URL:
    """Parse `url`; plain ``postgresql://`` (and ``postgres://``) mean the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # SQLAlchemy's message quotes the URL, password and all; say what is wrong without it.
        raise StoreError(
            f"store URL {masked_url(url)!r} is not a database URL "
            "(expected e.g. postgresql+psycopg://user:password@host/db or sqlite:///path)"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"store URL {parsed.render_as_string(hide_password=True)!r}: only sqlite:/// "
            "and postgresql+psycopg:// databases are supported"
        )
    return parsed


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    in_memory = database in (None, "", ":memory:")
    if not in_memory and database is not None and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    }
    if in_memory:
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Hand transaction control to the "begin" listener below (pysqlite would BEGIN lazily).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgresql_engine(url: URL) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Database:
    """One engine plus the two kinds of transaction the store uses."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.dialect: str = self.url.get_backend_name()
        self.safe_url: str = self.url.render_as_string(hide_password=True)
        try:
            if self.dialect == "sqlite":
                self.engine = _sqlite_engine(self.url)
            else:
                self.engine = _postgresql_engine(self.url)
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(f"cannot open the store at {self.safe_url}: {error}") from error

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        try:
            yield
        except StatementError as error:
            if not isinstance(error, DBAPIError) and isinstance(error.orig, ValueError):
                # A value the column cannot take (a naive datetime): the caller's bug, not
                # a fault worth retrying.
                raise error.orig from error
            raise self._store_error(error) from error
        except SQLAlchemyError as error:
            raise self._store_error(error) from error

    def _store_error(self, error: SQLAlchemyError) -> StoreError:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()
        first = detail[0] if detail else type(error).__name__
        return StoreError(f"store {self.safe_url}: {first}")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A short read transaction (deferred on SQLite; READ COMMITTED on PostgreSQL)."""
        with self.translate_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it holds the database write lock from its first line."""
        with self.translate_errors(), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def name_in(
    db: Database, column: ColumnElement[str], values: Sequence[str] | BindParameter[Any]
) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(array)``: one parameter, not N.

    The statement text then stays the same whatever the number of values, so the driver's
    and the server's statement caches hold and a 500-name list is not 500 placeholders to
    render and parse on every call. `values` may be an expanding bind parameter to fill in at
    execution (``{"key": [...]}``).
    """
    if isinstance(values, BindParameter):
        if not db.is_postgresql:
            return column.in_(values)
        array = bindparam(values.key, type_=postgresql.ARRAY(String()))
        return column == any_(array)
    if db.is_postgresql:
        return column == any_(literal(list(values), postgresql.ARRAY(String())))
    return column.in_(values)


def dialect_insert(db: Database, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT in the engine's dialect."""
    if db.is_postgresql:
        return postgresql.insert(table)
    return sqlite.insert(table)
