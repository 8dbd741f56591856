"""The SQLite store stays locked for 15 s under a running beat: beat stays up and catches up.

The test takes the store's write lock itself (``BEGIN EXCLUSIVE`` from its own connection) and
holds it for longer than the store's busy timeout, so beat's writes really fail with "database
is locked" rather than merely waiting. Two 1-second entries differ in their catch-up policy and
have a misfire_grace longer than the outage. Afterwards: beat never exited, logged the outage
and the recovery once each (not once per tick), sent every `all` slot of the outage window
exactly once (task ids counted in the queue, not taken from beat), recorded the `latest` slots
it did not send as missed, the ledger holds one row for every slot of both entries, and
"why did this slot not run?" names the database outage.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduling.config.compiler import compile_entries
from scheduling.config.loading import load_settings
from scheduling.operations.explain import explain_slot
from scheduling.store import RunRecord, RunState, Store
from scheduling.store.database import SQLITE_BUSY_TIMEOUT_MS
from scheduling.timing.timetables import Timetable
from tests.support.beats import QueueTap, beat_settings_text, start_beat, unique_queues

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOLD = SQLITE_BUSY_TIMEOUT_MS / 1000 + 5.0
"""Longer than beat's busy timeout: its writes fail instead of waiting the lock out."""
ENTRIES = """
[schedule.db-all]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
catchup = "all"
misfire_grace = "1m"
queue = "{high}"

[schedule.db-latest]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "1s"
catchup = "latest"
misfire_grace = "1m"
queue = "{default}"
"""
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SETTLED = {RunState.DISPATCHED, RunState.MISSED, RunState.SKIPPED}


def ledger(store: Store, entry: str) -> list[RunRecord]:
    return sorted(store.runs_for_entry(entry, limit=1000), key=lambda run: run.scheduled_for)


def assert_ledger_complete(runs: list[RunRecord], timetable: Timetable) -> None:
    """One row per slot of the timetable from the first row to the last, none twice."""
    slots = [run.scheduled_for for run in runs]
    assert len(slots) == len(set(slots)), "a slot has two ledger rows"
    expected = [slots[0], *timetable.slots_between(slots[0], slots[-1])]
    assert slots == expected, sorted(set(expected) ^ set(slots))


def logged_at(output: str, message: str) -> datetime:
    """When beat logged `message` (its log stamps local time, without a zone)."""
    match = re.search(
        r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): [^\]]*\] " + message, output, re.M
    )
    assert match, f"{message!r} not logged:\n{output[-4000:]}"
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)


def hold_write_lock(path: Path, seconds: float) -> tuple[datetime, datetime]:
    """Hold the store's write lock for `seconds`; return when it was taken and released."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        locked_at = datetime.now(UTC)
        time.sleep(seconds)  # the deliberate outage
        released_at = datetime.now(UTC)  # nobody can write before the ROLLBACK below
        connection.execute("ROLLBACK")
        return locked_at, released_at
    finally:
        connection.close()


def test_beat_rides_out_a_locked_sqlite_store(broker_url: str, tmp_path: Path) -> None:
    db_path = tmp_path / "periodic.db"

    def outage() -> tuple[datetime, datetime]:
        return hold_write_lock(db_path, HOLD)

    ride_out(f"sqlite:///{db_path}", broker_url, tmp_path, outage, "database is locked")


def test_beat_rides_out_a_stopped_postgresql(broker_url: str, tmp_path: Path) -> None:
    with ThrowawayPostgres() as cluster:

        def outage() -> tuple[datetime, datetime]:
            return cluster.stop_for(HOLD)

        ride_out(cluster.url, broker_url, tmp_path, outage, "")


def ride_out(
    database_url: str,
    broker_url: str,
    tmp_path: Path,
    outage: Callable[[], tuple[datetime, datetime]],
    error: str,
) -> None:
    """Run beat, cause `outage` (returns when it began and ended), then check the aftermath."""
    queues = unique_queues()
    settings = tmp_path / "settings.toml"
    settings.write_text(
        beat_settings_text(database_url, broker_url, queues, ENTRIES.format(**queues))
    )
    timetables = {c.name: c.timetable for c in compile_entries(load_settings(settings))}
    beat = start_beat(settings, tmp_path)
    store = Store.open(database_url)
    try:
        with QueueTap(broker_url, list(queues.values())) as tap:
            beat.wait_for(r"leader: \d+ entries loaded", timeout=60)
            tap.wait_for(lambda seen: len(seen) >= 4, 30, "the first runs of both entries")

            down_at, up_at = outage()
            assert beat.process.poll() is None, beat.output()[-3000:]
            beat.wait_for(rf"store unreachable: .*{error}", timeout=5)
            since = time.monotonic()
            for entry in ("db-all", "db-latest"):
                tap.first_after(entry, since, timeout=30)

            window = list(timetables["db-all"].slots_between(down_at, up_at))
            assert len(window) >= HOLD - 1

            def all_settled() -> bool:
                runs = {run.scheduled_for: run.state for run in ledger(store, "db-all")}
                return all(runs.get(slot) in SETTLED for slot in window)

            deadline = time.monotonic() + 30
            while not all_settled():
                assert time.monotonic() < deadline, "outage slots of db-all never settled"
                time.sleep(0.1)
            # A slot dispatched (or republished) twice would show as a second message.
            ids = {run.task_id for run in ledger(store, "db-all") if run.scheduled_for in window}
            tap.wait_for(lambda seen: ids <= {m.task_id for m in seen}, 30, "every outage run")
            assert beat.process.poll() is None, beat.output()[-3000:]
            beat.stop()
            counts = Counter(m.task_id for m in tap.messages())

        output = beat.output()
        assert output.count("store unreachable") == 1, output[-4000:]
        assert output.count("store back") == 1, output[-4000:]
        for part in ("store (lease)", "store (beat status)"):
            assert output.count(f"{part} unreachable") <= 1, output[-4000:]
            assert output.count(f"{part} unreachable") == output.count(f"{part} back")
        assert "Traceback" not in output, output[-4000:]
        # Readers pass a held SQLite write lock: "back" means writes go through again.
        # Beat's log stamps milliseconds, so `up_at` is cut to milliseconds too.
        up_to_the_ms = up_at.replace(microsecond=up_at.microsecond // 1000 * 1000)
        assert logged_at(output, "store back") >= up_to_the_ms, output[-4000:]

        every = ledger(store, "db-all")
        assert_ledger_complete(every, timetables["db-all"])
        in_window = [run for run in every if run.scheduled_for in window]
        assert [run.scheduled_for for run in in_window] == window
        assert {run.state for run in in_window} == {RunState.DISPATCHED}
        assert all(counts[run.task_id] == 1 for run in in_window)
        assert all(counts[run.task_id] <= 1 for run in every)

        latest = ledger(store, "db-latest")
        assert_ledger_complete(latest, timetables["db-latest"])
        settled = [run for run in latest if run.scheduled_for in window]
        states = [(run.scheduled_for, run.state) for run in settled]
        assert {run.state for run in settled} <= SETTLED, states
        missed = [run for run in settled if run.state is RunState.MISSED]
        sent = [run for run in settled if run.state is not RunState.MISSED]
        assert len(missed) >= HOLD - 3, states
        # Only the newest slot at recovery is sent (it may also lie just after the window).
        assert len(sent) <= 1, states
        assert all(counts[run.task_id] <= 1 for run in latest)
        assert not any(counts[run.task_id] for run in missed), "a missed slot was sent"
        assert up_at - down_at >= timedelta(seconds=HOLD)
        # Beat recorded the outage once the database answered: explain names it.
        middle = missed[len(missed) // 2].scheduled_for
        answer = explain_slot(
            store, load_settings(settings), "db-latest", middle, datetime.now(UTC)
        )
        assert (answer.reason, answer.facts["cause"]) == ("missed", "database_down"), answer
    finally:
        beat.stop()
        store.close()


class ThrowawayPostgres:
    """A PostgreSQL cluster of the test's own (own directory and port), which it may stop.

    Never the shared server on 5432. Runs as the ``postgres`` user when the test runs as root
    (PostgreSQL refuses to run as root); skips when the binaries or that user are missing. Its
    directory is outside pytest's tmp_path, which only the test's own user may enter.
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="periodic-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> ThrowawayPostgres:
        try:
            if not (PG_BIN / "initdb").exists():
                pytest.skip(f"no PostgreSQL binaries in {PG_BIN}")
            if os.geteuid() == 0:
                try:
                    shutil.chown(self.directory, "postgres")
                except LookupError:
                    pytest.skip("running as root and there is no postgres user for PostgreSQL")
            initdb = ("-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
            self._run("initdb", *initdb)
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def stop_for(self, seconds: float) -> tuple[datetime, datetime]:
        """Stop the server for `seconds`; return when it went down and when it began to start.

        The second time is taken before `pg_ctl start`: the server accepts connections before
        `pg_ctl -w` has noticed that it does, so a client may be back before `pg_ctl` returns.
        """
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        down_at = datetime.now(UTC)
        time.sleep(seconds)  # the deliberate outage
        starting_at = datetime.now(UTC)
        self._start()
        return down_at, starting_at

    def _start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        argv = [str(PG_BIN / program), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{program} failed:\n{result.stdout}{result.stderr}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
