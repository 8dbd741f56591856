"""The store's UTC column type and URL handling, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from scheduling.config.settings import ScheduleEntry
from scheduling.errors import StoreError
from scheduling.store import UTCDateTime
from scheduling.store.database import Database, normalize_url
from scheduling.store.rows import definition_json, parse_definition

SQLITE = sqlite.dialect()
POSTGRESQL = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
BERLIN_WINTER = timezone(timedelta(hours=1))


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=["sqlite", "postgresql"])
def test_utc_datetimes_round_trip_as_aware_utc(dialect: object) -> None:
    column = UTCDateTime()
    value = datetime(2026, 3, 1, 9, 30, 15, 250, tzinfo=BERLIN_WINTER)

    stored = column.process_bind_param(value, dialect)  # type: ignore[arg-type]
    loaded = column.process_result_value(stored, dialect)  # type: ignore[arg-type]

    assert loaded == value
    assert loaded is not None
    assert loaded.tzinfo is UTC
    assert loaded.hour == 8


def test_sqlite_stores_fixed_width_text_that_sorts_like_time() -> None:
    column = UTCDateTime()
    whole = column.process_bind_param(datetime(2026, 3, 1, 8, tzinfo=UTC), SQLITE)
    fraction = column.process_bind_param(datetime(2026, 3, 1, 8, 0, 0, 1, tzinfo=UTC), SQLITE)

    assert whole == "2026-03-01 08:00:00.000000"
    assert isinstance(fraction, str)
    assert whole < fraction


def test_postgresql_gets_naive_utc() -> None:
    stored = UTCDateTime().process_bind_param(
        datetime(2026, 3, 1, 9, tzinfo=BERLIN_WINTER), POSTGRESQL
    )

    assert stored == datetime(2026, 3, 1, 8)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime 2026-03-01T08:00:00"):
        UTCDateTime().process_bind_param(datetime(2026, 3, 1, 8), SQLITE)


def test_none_passes_through() -> None:
    column = UTCDateTime()
    assert column.process_bind_param(None, SQLITE) is None
    assert column.process_result_value(None, SQLITE) is None


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:p@db/periodic", "postgres://u:p@db/periodic"],
)
def test_plain_postgresql_urls_use_psycopg_3(url: str) -> None:
    assert normalize_url(url).drivername == "postgresql+psycopg"


def test_an_unsupported_database_is_refused_without_leaking_the_password() -> None:
    with pytest.raises(StoreError, match="only sqlite") as raised:
        normalize_url("mysql://user:hunter2@db/periodic")

    assert "hunter2" not in str(raised.value)


def test_a_malformed_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        normalize_url("not a url")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://periodic:hunter2@db:notaport/periodic",
        "://periodic:hunter2@db/periodic",
    ],
)
def test_a_malformed_url_is_reported_without_its_password(url: str) -> None:
    with pytest.raises(StoreError) as raised:
        normalize_url(url)
    assert "hunter2" not in str(raised.value)
    assert "periodic:***@" in str(raised.value)


def test_a_sqlite_database_gets_its_directory_created(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "deeper" / "periodic.db"

    database = Database(f"sqlite:///{target}")
    database.dispose()

    assert target.parent.is_dir()


def test_stored_definitions_are_compact_and_parse_back() -> None:
    definition = ScheduleEntry(
        task="scheduling.tasks.heartbeat.heartbeat", cron="0 8 * * *", misfire_grace="1h"
    )

    text = definition_json(definition)

    assert text == (
        '{"task":"scheduling.tasks.heartbeat.heartbeat","cron":"0 8 * * *","misfire_grace":"1h"}'
    )
    assert parse_definition(text) == definition
    assert parse_definition(text) is parse_definition(text)
