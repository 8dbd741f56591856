"""Beat and Python's cyclic garbage collector: a table of 100k entries must not be traversed.

Loading the due index at take-over creates some half a million long-lived objects (an index row,
its strings and datetimes, a heap slot per entry). With the collector on, that load set off
several full (generation 2) collections, each walking everything loaded so far: at 100k entries
on the benchmark machine 0.25-1.2 s each, 2.2 s of a 2.7 s take-over. And every later full
collection walked the whole table again, stalling the tick (and a change waiting for it) for
hundreds of milliseconds, at whatever moment the allocation counters decided.

`loading_table` turns automatic collection off for the load and then moves every object alive
at that point into the permanent generation (`gc.freeze`): later collections skip them, so
their cost no longer grows with the number of entries. The table holds no reference cycles, so
rows it drops later are still freed by reference counting; what the freeze keeps for good is at
most cyclic garbage that happened to be uncollected at a take-over, which happens once per
change of leader.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["loading_table"]


@contextmanager
def loading_table() -> Iterator[None]:
    """No automatic collection while the block loads; freeze what is alive after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
