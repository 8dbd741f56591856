"""Sharing the store's database with an application that runs Alembic or Flask-Migrate.

Periodic migrates its own tables (``periodic_*``, see `scheduling.store.schema`); an app's
``alembic revision --autogenerate`` does not know them and would emit a ``drop_table`` for each.
Pass `exclude_periodic_tables` as Alembic's ``include_object`` hook to leave them out::

    # migrations/env.py (Alembic)
    context.configure(..., include_object=exclude_periodic_tables)

    # Flask-Migrate passes extra arguments on to context.configure
    Migrate(app, db, include_object=exclude_periodic_tables)
"""

from __future__ import annotations

from typing import Any

__all__ = ["PERIODIC_TABLE_PREFIX", "exclude_periodic_tables"]

PERIODIC_TABLE_PREFIX = "periodic_"


def exclude_periodic_tables(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """False for Periodic's tables and everything on them (columns, indexes, constraints)."""
    if type_ == "table":
        return not (name or "").startswith(PERIODIC_TABLE_PREFIX)
    table = getattr(obj, "table", None)
    table_name = getattr(table, "name", None)
    return not (isinstance(table_name, str) and table_name.startswith(PERIODIC_TABLE_PREFIX))
