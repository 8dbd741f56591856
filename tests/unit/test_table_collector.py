"""A table loaded under `loading_table` is left out of later garbage collections, and the
collector runs again afterwards as it did before."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from scheduling.beat.collector import loading_table


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_no_automatic_collection_runs_while_the_table_loads() -> None:
    gc.enable()
    with loading_table():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_what_was_loaded_is_frozen_out_of_later_collections() -> None:
    gc.unfreeze()
    before = gc.get_freeze_count()
    with loading_table():
        table = {f"entry-{i}": [i, str(i)] for i in range(10_000)}
    assert gc.get_freeze_count() >= before + len(table)
    # No generation a collection walks holds them any more.
    gc.collect()
    row = table["entry-1"]
    assert not any(found is row for g in range(3) for found in gc.get_objects(g))


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with loading_table():
        pass
    assert not gc.isenabled()
