"""An app's Alembic autogenerate on a database it shares with the store: no periodic_* drops."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

from scheduling.store import Store
from scheduling.store.migrations import exclude_periodic_tables


def diffs(url: str, include_object: object | None) -> list[tuple[object, ...]]:
    team = MetaData()
    Table("orders", team, Column("id", Integer, primary_key=True), Column("ref", String(20)))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            team.create_all(conn)
        with engine.connect() as conn:
            opts = {"include_object": include_object} if include_object else {}
            return list(compare_metadata(MigrationContext.configure(conn, opts=opts), team))
    finally:
        engine.dispose()


def test_autogenerate_leaves_the_periodic_tables_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Store.open(url).close()
    unfiltered = diffs(url, None)
    dropped = {diff[1].name for diff in unfiltered if diff[0] == "remove_table"}
    assert "periodic_entries" in dropped
    assert all(name.startswith("periodic_") for name in dropped)
    assert diffs(url, exclude_periodic_tables) == []
