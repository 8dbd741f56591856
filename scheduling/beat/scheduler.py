"""`DatabaseScheduler`: Celery Beat driven by the store, for live changes and exactly-once dispatch.

Stock Beat keeps its schedule in a local file: a change needs a restart, and two beats dispatch
every slot twice. Here the schedule lives in the store and beat keeps only a cache of it:

* start-up: the schedule is validated against the task registry (an invalid schedule stops beat
  with a non-zero exit), config-owned entries are synced into the store, and the leader loads
  every entry into an in-memory heap keyed on the next send time (`EntryTable`);
* each tick looks at the top of that heap, so an idle tick costs the same at 100 and 100,000
  entries;
* changes are pushed, not polled: the leader sleeps (`Wakeup`) until the earliest of the next due
  time, a change signal from the store (PostgreSQL LISTEN/NOTIFY; SQLite inotify plus
  `data_version`, see `scheduling.store.notify`) and the poll fallback, then reads the store's
  change sequence and loads only the changed rows, never the table. `beat.sync_interval` is a
  bound, not a period: with a signal the sequence is still read every sync_interval /
  `LISTENING_POLLS` (a lost notification costs no more than that), on the signal's connection
  and inside the sleep, so an idle leader does not tick for it; without one (the signal's
  connection is down) every sync_interval / `CHANGE_POLLS` by the tick, as before. The settings
  file is stat'ed at the same pace (from the sleep, or by the polling tick);
* due slots are claimed in the store before they are published with publisher confirms and
  marked dispatched afterwards (`Dispatcher`: the outbox), so each slot is sent exactly once by
  whichever beat holds the lease (`Leadership`), and a claim whose publish never got confirmed
  is republished with the same task id;
* settings.toml is watched (`SettingsWatcher`); a good edit is synced into the store and reaches
  the heap through the same change feed, a bad one is logged and changes nothing;
* a broker or database outage never stops beat: it backs off (0.5 s doubling to 10 s), logs once
  per state change (`Outage`), and afterwards dispatches per each entry's catch-up policy; a
  leader whose tick keeps failing for any other reason (`HAND_OVER_AFTER` in a row) hands the
  lease to another beat for one lease TTL instead of holding it while nothing is dispatched;
* the beat's status row (role, time of its last completed tick, dispatch lag) is written by the
  lease thread after each lease round (every lease_ttl / 3), not by the tick: an idle tick does
  no store write, and a tick loop that hangs shows as a `last_tick` that stops moving while the
  status keeps coming.

Settings come from the Celery app (`scheduling.celery.appsettings.ensure_settings`: configured by
`init_celery`, else read once from ``$PERIODIC_SETTINGS``), so ``celery -A team_app beat -S
scheduling.scheduler:DatabaseScheduler`` works on any Celery app; the settings file is watched
unless the settings were built in code (source "settings"). The topology is declared on every
new broker connection, so beat needs no worker to have started first.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import ScheduleEntry as BeatEntry
from celery.beat import Scheduler
from sqlalchemy.engine import make_url

from scheduling.beat.collector import loading_table
from scheduling.beat.config_watch import SettingsWatcher, sync_schedule
from scheduling.beat.dispatcher import Dispatcher, DispatchReport
from scheduling.beat.entrytable import EntryTable
from scheduling.beat.leadership import Leadership
from scheduling.beat.outage import Outage
from scheduling.beat.wakeup import Wakeup
from scheduling.broker.publisher import ConfirmedPublisher
from scheduling.broker.topology import declarer
from scheduling.celery.appsettings import ensure_settings
from scheduling.config.imports import import_task_modules
from scheduling.config.loading import load_settings
from scheduling.config.registry import validate_against_registry
from scheduling.config.settings import Settings
from scheduling.errors import ConfigError, LeaseLost, PublishError, StoreError
from scheduling.store import BeatStatus, ChangeSignal, EntryRecord, Store

__all__ = ["DatabaseScheduler"]

logger = logging.getLogger(__name__)

LOADER_KEY = "periodic_settings_loader"
BURST_LIMIT = 20_000
"""Entries handled per tick; a larger burst continues on the next tick, without sleeping."""
DISPATCH_CHUNK = 500
"""Entries claimed, published and marked together: the first message of a 10k burst leaves
after one chunk's claim instead of the whole burst's, and the store and broker alternate on
small batches that keep both busy."""
FIRST_CHUNK = 50
"""A burst starts with a chunk this small and doubles it up to `DISPATCH_CHUNK`, so its first
message leaves within milliseconds while the bulk still travels in full chunks."""
SWEEP_INTERVAL = 30.0
"""How often the leader looks for old unconfirmed claims (e.g. a "run now" whose sender died)."""
CHANGE_POLLS = 4
"""Change-sequence reads per sync_interval without a change signal: the poll period leaves 3/4
of the bound to process."""
LISTENING_POLLS = 1
"""Change-sequence reads (and settings-file looks) per sync_interval while a change signal is
open: the fallback for a lost notification, and the pace of the file watch. Every wake-up of
an idle beat costs some 50-150 µs of CPU (most of it the wake-up itself), so few is cheap. The
reads happen inside the sleep (`Wakeup.wait`); a tick follows only when the sequence moved or
the settings file needs its look."""
SIGNAL_LOOK = 0.5
"""Seconds between looks at a signal without a socket (SQLite's data_version where inotify is
unavailable: a few µs plus the wake-up), so a change still arrives within about half a second."""
SIGNAL_RETRY = 5.0
"""Seconds between attempts to reopen a lost change signal (meanwhile beat polls)."""
HAND_OVER_AFTER = 3
"""A leader whose tick fails this many times in a row for a reason of its own (not an entry's,
the store's or the broker's: those are isolated or ridden out) hands the lease to another beat
for one lease TTL (`Leadership.hand_over`)."""
DEAD_BEAT_AFTER = timedelta(minutes=1)
"""A beat silent this long (or 10 lease TTLs, if longer) is dropped from the status table."""
_PROCESS_TAG = secrets.token_hex(3)
"""Tells apart two beats that reuse a PID on one host; shared by every scheduler in a process."""


def _load_and_import(path: Path) -> Settings:
    """A hot reload imports what the new file adds to ``[app].imports`` before validating."""
    settings = load_settings(path)
    import_task_modules(settings, str(path))
    return settings


class DatabaseScheduler(Scheduler):
    """A `celery.beat.Scheduler` whose schedule, ledger and lease live in the store."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        try:
            self.settings, self.source = ensure_settings(app)
        except ConfigError as error:
            logger.critical("%s", error)
            raise SystemExit(f"periodic: {error}") from None
        self.sync_interval: float = float(self.settings.beat.sync_interval.total_seconds())
        self.poll_interval = self.sync_interval / CHANGE_POLLS
        self._hostname = socket.gethostname()
        self.beat_id = f"{self._hostname}:{os.getpid()}:{_PROCESS_TAG}"
        self.table = EntryTable(self.settings)
        self.publisher = ConfirmedPublisher.from_settings(
            self.settings.broker,
            declare=declarer(self.settings),
            sent_events=bool(app.conf.task_send_sent_event),
        )
        self.store: Store | None = None
        self.leadership: Leadership | None = None
        self.dispatcher: Dispatcher | None = None
        self.watcher: SettingsWatcher | None = None
        self.store_outage = Outage("store", logger, on_down=self._store_down)
        self._store_outage_began: datetime | None = None
        self.broker_outage = Outage(
            "broker", logger, on_down=self._broker_down, on_back=self._broker_back
        )
        self._broker_outage: tuple[int | None, datetime] | None = None
        """(its row id, or None if the store could not take it; when it began)."""
        self._unsynced: Settings | None = None
        self._seq = 0
        self._led_generation = 0
        self._next_check = 0.0
        self._next_sweep = 0.0
        self._republish = False
        self._more_due = False
        self._lag: float | None = None
        self._progress: tuple[datetime, float | None] = (datetime.now(UTC), None)
        """(end of the last completed tick, last dispatch lag): one tuple, so the lease thread
        reads both at once without a lock."""
        self._closed = False
        self._failed_ticks = 0
        self.wakeup = Wakeup(
            self._open_signal,
            min(self.poll_interval, SIGNAL_LOOK),
            SIGNAL_RETRY,
            fallback_interval=self.sync_interval / LISTENING_POLLS,
        )
        kwargs["max_interval"] = self.poll_interval
        super().__init__(app, *args, **kwargs)
        self.max_interval = self.poll_interval  # type: ignore[assignment]  # Celery takes floats

    # --- Celery's interface -------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Validate, watch the file, then connect (a store outage here is retried by `tick`)."""
        self._check_or_exit(self.settings)
        path = Path(self.source)
        if self.source != "settings" and path.is_file():
            loader: Callable[[Path], Settings] = self.app.conf.get(LOADER_KEY) or _load_and_import
            self.watcher = SettingsWatcher(path, loader, self._validate)
        try:
            self._bootstrap(at_start=True)
        except StoreError as error:
            self.store_outage.failed(error)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass: changes, leadership, due slots, then the leader's sleep.

        Returns the seconds Celery should sleep: 0 after the leader slept here itself (woken
        early by a change signal, see `Wakeup`), else the poll delay.
        """
        if self._closed:
            return self.poll_interval
        try:
            delay = self._tick()
        except Exception:
            logger.exception("beat tick failed; continuing")
            delay = self.poll_interval
            self._tick_failed()
        else:
            self._failed_ticks = 0
        self._flush_faults()
        self._progress = (datetime.now(UTC), self._lag)
        return self._rest(delay)

    def _tick_failed(self) -> None:
        """Count a leader's failed ticks; past `HAND_OVER_AFTER` in a row, let another beat
        lead (its lease thread would otherwise keep the lease while nothing is dispatched)."""
        leadership = self.leadership
        if leadership is None or not leadership.leading:
            self._failed_ticks = 0
            return
        self._failed_ticks += 1
        if self._failed_ticks < HAND_OVER_AFTER:
            return
        self._failed_ticks = 0
        leadership.hand_over(
            f"{HAND_OVER_AFTER} ticks in a row failed", self.settings.beat.lease_ttl.total_seconds()
        )

    def sync(self) -> None:
        """Nothing to flush: every decision is written to the store when it is made."""

    def close(self) -> None:
        """Hand back the lease and close the broker and store connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.wakeup.dispose()
        if self.leadership is not None:
            self.leadership.stop()
        self.publisher.close()
        if self.store is not None:
            self.store.close()
        super().close()

    def get_schedule(self) -> dict[str, BeatEntry]:
        """The active entries as Celery `ScheduleEntry` objects (built on demand, for display).

        Beat keeps no definitions in memory, so this reads the active entries' records.
        """
        schedule: dict[str, BeatEntry] = {}
        active = [name for name, row in self.table.index.items() if row.active]
        records = self.store.get_entries(active) if self.store is not None else []
        for record in records:
            shape = self.table.shape(record) if record.active else None
            if shape is None:
                continue
            schedule[record.name] = BeatEntry(
                name=record.name,
                task=shape.task,
                schedule=shape.timetable,
                args=tuple(record.definition.args),
                kwargs=dict(record.definition.kwargs),
                options={"queue": shape.queue},
                app=self.app,
            )
        return schedule

    def set_schedule(self, schedule: Any) -> None:
        self.data = schedule

    schedule = property(get_schedule, set_schedule)

    @property
    def info(self) -> str:
        url = make_url(self.settings.app.database_url.get_secret_value())
        beat = self.settings.beat
        return (
            f"    . store -> {url.render_as_string(hide_password=True)}\n"
            f"    . sync interval -> {beat.sync_interval.total_seconds()}s, "
            f"lease ttl -> {beat.lease_ttl.total_seconds()}s, beat id -> {self.beat_id}"
        )

    # --- start-up -----------------------------------------------------------------------

    def _validate(self, settings: Settings, source: str) -> None:
        validate_against_registry(settings, self.app.tasks, source)

    def _check_or_exit(self, settings: Settings) -> None:
        try:
            self._validate(settings, self.source)
        except ConfigError as error:
            logger.critical("%s", error)
            raise SystemExit(f"periodic: {error}") from None

    def _bootstrap(self, *, at_start: bool = False) -> None:
        if self.store is None:
            self.store = Store.open(self.settings.app.database_url.get_secret_value())
        self.table.fetch = self.store.get_entries
        try:
            self._sync_settings(self.settings)
        except ConfigError as error:
            if not at_start:
                raise
            logger.critical("%s", error)
            raise SystemExit(f"periodic: {error}") from None
        ttl = self.settings.beat.lease_ttl
        self.leadership = Leadership(
            self.store,
            self.beat_id,
            ttl,
            self._beat_status,
            forget_after=max(DEAD_BEAT_AFTER, 10 * ttl),  # one beat keeps /beat free of the gone
            on_lead=self.wakeup.nudge,  # a standby sleeping in `_rest` leads at once
        )
        self.dispatcher = Dispatcher(
            self.store,
            self.publisher,
            self.table,
            self.beat_id,
            self.settings.beat.max_catchup,
        )
        self.leadership.start()
        self._store_back()

    def _sync_settings(self, settings: Settings) -> None:
        assert self.store is not None
        summary = sync_schedule(
            self.store, settings, datetime.now(UTC), actor=f"settings:{self.source}"
        )
        if summary.changed:
            logger.info(
                "settings synced: %d created, %d updated, %d pruned, %d unchanged",
                len(summary.created),
                len(summary.updated),
                len(summary.pruned),
                summary.unchanged,
            )

    def _broker_down(self) -> None:
        """Record the start of a broker outage, so explain can name it (best effort)."""
        began = datetime.now(UTC)
        outage_id = None
        if self.store is not None:
            try:
                outage_id = self.store.outage_began("broker", self.beat_id, began)
            except StoreError:
                logger.debug("broker outage start not recorded: the store did not answer")
        self._broker_outage = (outage_id, began)

    def _broker_back(self) -> None:
        if self._broker_outage is None or self.store is None:
            return
        outage_id, began = self._broker_outage
        self._broker_outage = None
        try:
            self.store.outage_ended(
                outage_id,
                datetime.now(UTC),
                dependency="broker",
                beat_id=self.beat_id,
                began=began,
            )
        except StoreError:
            logger.debug("broker outage end not recorded: the store did not answer")

    def _store_down(self) -> None:
        if self._store_outage_began is None:
            self._store_outage_began = datetime.now(UTC)

    def _store_back(self) -> None:
        """End the store outage once a write goes through; raises StoreError while none does.

        A tick that only read proves little: SQLite readers pass a held write lock, and a beat
        whose lease lapsed reads but claims nothing. The write is the outage's own row,
        recorded whole (first failed tick to now) so "why did this slot not run?" names it;
        only then is the store logged back.
        """
        began = self._store_outage_began
        if began is not None and self.store is not None:
            self.store.outage_ended(
                None, None, dependency="database", beat_id=self.beat_id, began=began
            )
            self._store_outage_began = None
        self.store_outage.succeeded()

    # --- the tick -----------------------------------------------------------------------

    def _tick(self) -> float:
        mono = time.monotonic()
        if self.store_outage.down and not self.store_outage.ready():
            return self._delay(mono, None)
        try:
            if self.dispatcher is None:
                self._bootstrap()
            self._align_timers(mono)
            self._watch_settings(mono)
            token = self.leadership.token if self.leadership else None
            if token is not None:
                self._lead(token, mono)
        except StoreError as error:
            if not self.store_outage.down:
                # It began when this attempt did: a locked store fails after its busy timeout.
                lasted = timedelta(seconds=time.monotonic() - mono)
                self._store_outage_began = datetime.now(UTC) - lasted
            self.store_outage.failed(error)
            return self._delay(mono, None)
        if self.store_outage.down and not (self.leadership and self.leadership.store_failing):
            # Back once a write of the main loop goes through, and the lease thread's too.
            try:
                self._store_back()
            except StoreError as error:
                self.store_outage.failed(error)
                return self._delay(mono, None)
        leading = self.leadership is not None and self.leadership.leading
        return self._delay(mono, self.table.next_due() if leading else None, leading)

    def _check_period(self) -> float:
        """Seconds between the tick's change checks (sequence read, settings file look).

        While a change signal is open the sleep itself reads the sequence and stats the
        settings file (`Wakeup.wait`), and wakes the tick only when either moved. A standby
        reads no sequence (it loads the table when it takes over) and looks at the settings
        file once per sync_interval, as a listening leader does; the lease thread wakes it the
        moment it takes the lease.
        """
        if self.wakeup.listening:
            return SWEEP_INTERVAL
        if self.leadership is not None and not self.leadership.leading:
            return self.sync_interval
        return self.poll_interval

    def _settings_touched(self) -> bool:
        """For the sleep's look once per sync_interval: an edit to read, or one to sync again."""
        if self._unsynced is not None:
            return True
        return self.watcher is not None and self.watcher.touched()

    def _delay(self, mono: float, next_due: datetime | None, leading: bool = False) -> float:
        """Seconds until the next tick: a change check, a due entry (and a sync interval before
        it, to open the broker connection, see `_warm_publisher`), and for the leader the sweep
        for unconfirmed claims and the retry of refused runs; an outage's backoff."""
        if self._more_due:
            return 0.0
        delay = self._next_check - mono
        if next_due is not None:
            until_due = (next_due - datetime.now(UTC)).total_seconds()
            delay = min(delay, until_due)
            if not self.publisher.connected and until_due > self.sync_interval:
                delay = min(delay, until_due - self.sync_interval)
        if leading and not self.broker_outage.down:  # (the sweep waits for the broker)
            delay = min(delay, self._next_sweep - mono)
            retry = self.dispatcher.next_refusal_retry() if self.dispatcher else None
            if retry is not None:
                delay = min(delay, (retry - datetime.now(UTC)).total_seconds())
        outage = self.store_outage if self.store_outage.down else self.broker_outage
        if outage.down and not outage.ready():
            delay = min(delay, outage.wait())
        return max(0.0, min(delay, self._check_period()))

    def _rest(self, delay: float) -> float:
        """Both sleep here, so Celery's loop never does: the leader woken by a change signal,
        a standby by the lease thread's nudge when it takes the lease (it then leads at once,
        not after the rest of its poll delay).

        A wake-up makes the next tick read the change sequence at once.
        """
        leading = (
            self.store is not None
            and not self.store_outage.down
            and self.leadership is not None
            and self.leadership.leading
        )
        if not leading:
            self.wakeup.close()
            if delay > 0.0:
                self.wakeup.pause(delay)
            return 0.0
        if delay <= 0.0:
            return 0.0
        if self.wakeup.wait(delay, self._seq, self._settings_touched):
            self._next_check = 0.0
        return 0.0

    def _open_signal(self) -> ChangeSignal | None:
        assert self.store is not None
        return self.store.change_signal()

    def _align_timers(self, mono: float) -> None:
        """One tick for both periodic jobs of an idle leader: the change check and the sweep
        for unconfirmed claims. Whichever is due brings the other forward when that one falls
        due within half the shorter period, so the two timers meet and then keep step: while
        a change signal is open (both periods `SWEEP_INTERVAL`) one idle tick per period
        instead of two. (Early is harmless: the check reads what it would have read, and the
        sweep still takes only claims older than `SWEEP_INTERVAL`.)"""
        check_due, sweep_due = mono >= self._next_check, mono >= self._next_sweep
        if check_due == sweep_due:  # neither due (most ticks: a burst's), or both already
            return
        window = min(SWEEP_INTERVAL, self._check_period()) / 2
        if check_due and self._next_sweep - mono < window:
            self._next_sweep = mono
        elif sweep_due and self._next_check - mono < window:
            self._next_check = mono

    def _watch_settings(self, mono: float) -> None:
        if mono < self._next_check:
            return
        self._next_check = mono + self._check_period()
        if self.watcher is not None:
            changed = self.watcher.poll()
            if changed is not None:
                self._unsynced = changed
        if self._unsynced is not None:
            self._apply_settings(self._unsynced)
        leadership = self.leadership
        # Right after becoming leader a full load comes next instead.
        if (
            leadership is not None
            and leadership.leading
            and leadership.generation == self._led_generation
        ):
            self._pull_changes()

    def _apply_settings(self, settings: Settings) -> None:
        try:
            self._sync_settings(settings)
        except ConfigError as error:
            logger.error(
                "settings change rejected, the last good schedule keeps running: %s", error
            )
            self._unsynced = None
            return
        self._unsynced = None
        if settings.model_dump(exclude={"schedule"}) != self.settings.model_dump(
            exclude={"schedule"}
        ):
            logger.warning("settings outside [schedule] changed; they take effect at restart")
        self.settings = settings
        self.table.use_settings(settings)

    def _pull_changes(self) -> None:
        assert self.store is not None
        current = self.wakeup.current_seq()
        if current is None:
            current = self.store.change_seq()
        if current == self._seq:
            return
        self._seq, changed, deleted = self.store.changes_since(self._seq)
        resumed = self.table.apply(changed, deleted)
        logger.info("schedule changes: %d entries changed, %d deleted", len(changed), len(deleted))
        now = datetime.now(UTC)
        for record in resumed:
            # Slots that fell during a pause were paused, not missed: resume at the next one.
            shape = self.table.shape(record)
            if shape is None or record.next_run_at is None or record.next_run_at > now:
                continue
            try:
                upcoming = shape.timetable.next_after(now)
            except Exception as error:  # this entry's arithmetic: its fault alone
                self.table.fail(record.name, error)
                continue
            self.store.set_next_run(record.name, upcoming)
            self.table.advance(record.name, upcoming, 0)

    def _lead(self, token: int, mono: float) -> None:
        assert self.store is not None
        assert self.dispatcher is not None
        assert self.leadership is not None
        if self.leadership.generation != self._led_generation:
            self._take_over()
            self._led_generation = self.leadership.generation
        if not self._broker_ready():
            return
        now = datetime.now(UTC)
        try:
            if self._republish or mono >= self._next_sweep:
                older_than = None if self._republish else now - timedelta(seconds=SWEEP_INTERVAL)
                self.dispatcher.republish_pending(now, older_than)
                self._republish = False
                self._next_sweep = mono + SWEEP_INTERVAL
            self.dispatcher.retry_refused(now)
            self._dispatch(token, now)
        except PublishError as error:
            self._republish = True
            self.broker_outage.failed(error)
            return
        self._warm_publisher()

    def _warm_publisher(self) -> None:
        """Connect to the broker ahead of an entry due within a sync interval, so that its
        first message does not wait for the connection (about 20 ms, most of the first
        message's latency otherwise). A leader with nothing due soon does not connect for it
        (once open, the connection stays, as after any publish); a failure here is a broker
        outage like any other."""
        if self.publisher.connected or self.broker_outage.down:
            return
        next_due = self.table.next_due()
        if next_due is None or (next_due - datetime.now(UTC)).total_seconds() > self.sync_interval:
            return
        try:
            self.publisher.ensure_connected()
        except PublishError as error:
            self.broker_outage.failed(error)

    def _take_over(self) -> None:
        assert self.store is not None
        started = time.monotonic()
        self._seq = self.store.change_seq()
        self.table.faults.adopt(self.store.entry_faults())
        with loading_table():
            self.table.load(self.store.entry_index())
        self._republish = True
        self._warm_publisher()
        logger.info(
            "leader: %d entries loaded in %.2fs", len(self.table), time.monotonic() - started
        )

    def _broker_ready(self) -> bool:
        if not self.broker_outage.down:
            return True
        if not self.broker_outage.ready():
            return False
        try:
            self.publisher.ensure_connected()
        except PublishError as error:
            self.broker_outage.failed(error)
            return False
        self.broker_outage.succeeded()
        self._republish = True
        return True

    def _dispatch(self, token: int, now: datetime) -> None:
        """Dispatch what is due in chunks (`FIRST_CHUNK` doubling to `DISPATCH_CHUNK`), up to
        `BURST_LIMIT` per tick, with one log line for the whole burst.

        Chunks are pipelined (see `scheduling.beat.dispatcher`): the last one's confirms are
        awaited and the remaining marks written here, also when a chunk failed.
        """
        assert self.dispatcher is not None
        handled = 0
        names: list[str] = []
        dispatched = 0
        lag: float | None = None
        self._more_due = False
        chunk = FIRST_CHUNK
        try:
            while handled < BURST_LIMIT:
                due = self.table.pop_due(now, min(chunk, BURST_LIMIT - handled))
                if not due:
                    break
                handled += len(due)
                chunk = min(2 * chunk, DISPATCH_CHUNK)
                report = self._dispatch_chunk(due, token, now)
                if report is None:
                    break
                if report.dispatched:
                    dispatched += report.dispatched
                    if len(names) < 6:
                        names.extend(record.name for record in due[: 6 - len(names)])
                    lag = report.lag if lag is None else max(lag, report.lag or 0.0)
            else:
                self._more_due = True
        except BaseException:
            self._settle_after_failure()
            raise
        else:
            self.dispatcher.settle()
            self.dispatcher.flush_marks()
        finally:
            if dispatched:
                self._lag = lag
                shown = ", ".join(sorted(set(names))[:5])
                if dispatched > 5:
                    shown += " and more"
                logger.info("dispatched %d runs (%s), lag %.3fs", dispatched, shown, lag or 0.0)

    def _settle_after_failure(self) -> None:
        """The chunk in flight and the marks after a chunk failed; their own faults are noted
        here so they do not hide the one being raised."""
        assert self.dispatcher is not None
        try:
            self.dispatcher.settle()
        except PublishError as error:
            self._republish = True
            self.broker_outage.failed(error)
        try:
            self.dispatcher.flush_marks()
        except StoreError as error:  # kept for the next claim or flush
            logger.debug("confirmed runs not marked yet: %s", error)

    def _dispatch_chunk(
        self, due: list[EntryRecord], token: int, now: datetime
    ) -> DispatchReport | None:
        """One chunk through the outbox; None when the lease was lost (the chunk is put back)."""
        assert self.dispatcher is not None
        assert self.leadership is not None
        try:
            report = self.dispatcher.dispatch_due(due, token, now)
        except LeaseLost as error:
            self.leadership.step_down(str(error))
            self.table.retry_later(record.name for record in due)
            return None
        except (StoreError, PublishError):
            self.table.retry_later(record.name for record in due)
            raise
        except Exception as error:
            # Not a store or broker fault, so some entry's own: find it by trying each alone.
            # (A slot claimed before the error is not claimed twice; its row is republished.)
            if len(due) == 1:
                self.table.fail(due[0].name, error)
                return DispatchReport()
            report = self._dispatch_one_by_one(due, token, now)
        self.broker_outage.succeeded()
        return report

    def _dispatch_one_by_one(
        self, due: list[EntryRecord], token: int, now: datetime
    ) -> DispatchReport:
        assert self.dispatcher is not None
        assert self.leadership is not None
        total = DispatchReport()
        for index, record in enumerate(due):
            try:
                report = self.dispatcher.dispatch_due([record], token, now)
            except LeaseLost as error:
                self.leadership.step_down(str(error))
                self.table.retry_later(r.name for r in due[index:])
                return total
            except (StoreError, PublishError):
                self.table.retry_later(r.name for r in due[index:])
                raise
            except Exception as error:
                self.table.fail(record.name, error)
                continue
            total.dispatched += report.dispatched
            if report.lag is not None:
                total.lag = max(total.lag or 0.0, report.lag)
        return total

    def _flush_faults(self) -> None:
        """Write entries that went into or out of error; a failing store keeps them for later."""
        faults = self.table.faults
        if self.store is None or not faults.dirty:
            return
        try:
            faults.flush(self.store)
        except StoreError as error:
            logger.debug("entry faults not written yet: %s", error)

    def _beat_status(self, leading: bool) -> BeatStatus | None:
        """This beat's status row; built by `Leadership` on the lease thread every round."""
        if self.store is None or self._closed:
            return None
        last_tick, lag = self._progress
        return BeatStatus(
            beat_id=self.beat_id,
            hostname=self._hostname,
            pid=os.getpid(),
            role="leader" if leading else "standby",
            last_tick=last_tick,
            lag=lag,
        )
