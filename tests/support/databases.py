"""Throwaway PostgreSQL databases for the store tests (SQLite needs nothing but a temp dir).

The admin URL is ``PERIODIC_TEST_POSTGRES_URL`` if set, else the local server's ``test`` database.
One database per session (``periodic_test_<random>``); between tests its ``public`` schema is
dropped and recreated, which is much faster than a database per test.
"""

from __future__ import annotations

import os
import secrets

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

__all__ = [
    "POSTGRES_URL_ENV",
    "PostgresUnavailable",
    "StatementCounter",
    "create_test_database",
    "drop_test_database",
    "postgres_admin_url",
    "reset_schema",
]

POSTGRES_URL_ENV = "PERIODIC_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class PostgresUnavailable(Exception):
    pass


def postgres_admin_url() -> str:
    url = make_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_ADMIN_URL)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _admin_engine() -> Engine:
    return create_engine(
        postgres_admin_url(),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
        poolclass=NullPool,
    )


def _terminate_connections(engine: Engine, database: str) -> None:
    with engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": database},
        )


def create_test_database() -> str:
    """Create ``periodic_test_<random>`` and return its URL.

    Raises PostgresUnavailable when the server does not answer.
    """
    admin = _admin_engine()
    name = f"periodic_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as error:
        raise PostgresUnavailable(
            f"PostgreSQL at {make_url(postgres_admin_url()).render_as_string()} "
            f"does not answer ({error.__class__.__name__}: {str(error).splitlines()[0]}); "
            f"set {POSTGRES_URL_ENV} to an admin URL of a server the tests may create databases on"
        ) from error
    finally:
        admin.dispose()
    return make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_test_database(url: str) -> None:
    """Drop the database of `url` after terminating whatever is still connected to it."""
    name = make_url(url).database or ""
    admin = _admin_engine()
    try:
        _terminate_connections(admin, name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


def reset_schema(url: str) -> None:
    """Empty the database: terminate its other connections, then recreate ``public``."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        database = make_url(url).database or ""
        _terminate_connections(engine, database)
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


class StatementCounter:
    """Counts the data statements (SELECT/INSERT/UPDATE/DELETE) every engine sends meanwhile.

    Round trips, unlike wall time on a shared CI box, say whether a bulk path stayed bulk.
    """

    VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")

    def __init__(self) -> None:
        self.count = 0

    def _seen(self, *args: object) -> None:
        statement = args[2]
        if isinstance(statement, str) and statement.lstrip().upper().startswith(self.VERBS):
            self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._seen)
