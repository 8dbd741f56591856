"""The store as seen from a worker process: opened lazily, once per process and per app.

Celery's prefork pool forks its children from the main process. A database connection must never
cross a fork (two processes writing into one socket corrupt the protocol), so stores are cached
by process id: a child that finds only its parent's store opens its own. The parent's store is
kept referenced, never closed, in the child — closing or garbage-collecting it there would
shut down connections the parent is still using.
"""

from __future__ import annotations

import os
import threading

from celery import Celery

from scheduling.celery.appsettings import settings_of
from scheduling.store import Store

__all__ = ["forget_inherited_stores", "store_for"]

_lock = threading.Lock()
_stores: dict[tuple[int, int], Store] = {}
_inherited: list[Store] = []


def store_for(app: Celery) -> Store:
    """This process's store for `app`, opened from ``[app].database_url`` on first use.

    Raises `StoreError` when the database cannot be opened; the next call tries again.
    """
    key = (os.getpid(), id(app))
    store = _stores.get(key)
    if store is not None:
        return store
    with _lock:
        store = _stores.get(key)
        if store is None:
            url = settings_of(app).app.database_url.get_secret_value()
            store = _stores[key] = Store.open(url)
        return store


def forget_inherited_stores() -> None:
    """After a fork: stop handing out the parent's stores (they stay referenced, unused)."""
    pid = os.getpid()
    with _lock:
        for key in [key for key in _stores if key[0] != pid]:
            _inherited.append(_stores.pop(key))
