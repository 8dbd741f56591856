"""Beat calls the store back only once a write goes through, not when a read does.

SQLite readers pass a held write lock, and a beat whose lease lapsed during the outage only
reads in its ticks. A real `DatabaseScheduler` on a SQLite file, ticked on its own thread as
Celery's loop would (broker: a recording stand-in), is put in a store outage while the test
holds the database's write lock: the store must stay down until the lock is released, and the
outage row must then be written whole. (The fault suite found the old rule wrong under load:
"store back" was logged 4.5 s before the lock was released.)
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduling.errors import StoreError
from scheduling.store import Store
from tests.support.polling import wait_for
from tests.support.ticking_beats import TickingBeat, one_entry_settings

pytestmark = pytest.mark.integration

HELD = 1.5
"""How long the test holds the write lock: well under beat's busy timeout (10 s)."""


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


def test_the_store_is_back_when_a_write_goes_through_not_a_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scheduling")
    path = tmp_path / "periodic.db"
    url = f"sqlite:///{path}"
    # Not due during the test: the ticks only read, as those of a beat without the lease do.
    beat = TickingBeat(one_entry_settings(url, timedelta(hours=1), timedelta(seconds=30)))
    scheduler = beat.scheduler
    try:
        wait_for(lambda: logged(caplog, "entries loaded"), 10, "beat leading, its table loaded")
        lock = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            began = datetime.now(UTC)
            # As a tick that failed on the lock would leave it: the outage on, its backoff
            # short, and beat ticking again after it (an idle leader sleeps until woken).
            scheduler.store_outage.failed(StoreError("database is locked"))
            scheduler.wakeup.nudge()
            wait_for(lambda: scheduler.store_outage.ready(), 5, "the first retry due")
            deadline = datetime.now(UTC) + timedelta(seconds=HELD)
            while datetime.now(UTC) < deadline:  # ticks that read go through meanwhile
                assert scheduler.store_outage.down, "store called back while writes still fail"
                time.sleep(0.05)  # watching for something that must not happen: no condition
            released_at = datetime.now(UTC)
            lock.execute("ROLLBACK")
        finally:
            lock.close()
        wait_for(lambda: not scheduler.store_outage.down, 15, "the store called back")
    finally:
        beat.close()

    back = [r for r in caplog.records if r.getMessage().startswith("store back after")]
    assert len(back) == 1, [r.getMessage() for r in caplog.records]
    assert datetime.fromtimestamp(back[0].created, UTC) >= released_at
    with Store.open(url) as store:
        (outage,) = store.outages_at("database", began + (released_at - began) / 2)
    assert outage.ended_at is not None
    assert outage.started_at <= began + timedelta(seconds=1)
    assert outage.ended_at >= released_at
