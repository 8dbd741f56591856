"""Which beat dispatches: a lease in the store, renewed from a timer thread of its own.

Any number of beats may run; the holder of the lease claims slots, the others stand by. The
lease is renewed every ttl/3 from this thread, so a long tick (a big burst, a slow broker) never
lets it lapse. A standby polls at most every ttl/3 and, when it can see when the current lease
ends, wakes right then, so it takes over within one TTL of the leader's death.

Holding the lease is necessary, not sufficient: every claim carries the fencing token and the
store refuses it once another beat has taken over (`LeaseLost`). A beat whose renewals fail
stops treating itself as leader as soon as its lease may have expired, and steps down for good
when the store says it is gone. Stepping down is normal operation: the beat keeps running as a
standby and may lead again later.

The same thread reports this beat's status: liveness belongs with the lease timer, which runs
whatever the scheduler's loop is doing, and keeps a store write out of the tick. A leader's
status goes with its renewal, in one transaction on the store's clock (`LeaseStore.renew_lease`:
one round trip every ttl/3, the bulk of an idle beat's cost before). A standby's goes with its
look at the lease (`LeaseStore.watch_lease`), also one transaction, written only while another
beat holds the lease live; when the look finds the lease takeable the standby takes it through
`acquire_lease` (rare: once per take-over) and writes its status after, as does a beat standing
by after `hand_over`, which looks at nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from scheduling.beat.outage import Outage
from scheduling.errors import StoreError
from scheduling.store import BeatStatus, LeaseRecord

__all__ = ["Leadership", "LeaseStore"]

logger = logging.getLogger(__name__)

_MIN_POLL = 0.05


class LeaseStore(Protocol):
    """Expiry is written and compared on the store's clock: no `now` from this host."""

    def acquire_lease(self, holder: str, ttl: timedelta) -> LeaseRecord | None: ...
    def renew_lease(
        self,
        holder: str,
        token: int,
        ttl: timedelta,
        *,
        status: BeatStatus | None = None,
        forget_after: timedelta | None = None,
    ) -> bool:
        """Renew and, in the same transaction, record `status` (role "leader" only if renewed)
        and forget beats silent for `forget_after`."""

    def watch_lease(self, holder: str, *, status: BeatStatus | None = None) -> LeaseRecord | None:
        """The lease if another holder has it live (observed on the store's clock), with `status`
        recorded as standby in the same transaction; None, nothing written, if it is takeable."""

    def release_lease(self, holder: str, token: int) -> None: ...
    def current_lease(self) -> LeaseRecord | None: ...
    def record_beat(self, status: BeatStatus) -> None: ...
    def prune_beats(self, older_than: timedelta) -> int: ...


class Leadership:
    """This beat's view of the lease; `token` is the fencing token while it leads."""

    def __init__(
        self,
        store: LeaseStore,
        holder: str,
        ttl: timedelta,
        status: Callable[[bool], BeatStatus | None] | None = None,
        *,
        forget_after: timedelta | None = None,
        on_lead: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.clock = clock
        """This host's wall clock: only for how long a standby sleeps, never for the lease."""
        self.holder = holder
        self.ttl = ttl
        self.status = status
        """This beat's status row for "leading or not", built on the lease thread every round
        (None: nothing to report now)."""
        self.forget_after = forget_after
        """The leader drops beats whose status is older than this (None: never)."""
        self.on_lead = on_lead
        """Called from the lease thread each time it takes the lease (to wake the beat's loop)."""
        self.generation = 0
        """Grows each time this beat becomes leader (so the scheduler can rebuild and republish)."""
        self._lock = threading.Lock()
        self._token: int | None = None
        self._valid_until = 0.0
        self._standing_by_until = 0.0
        """Monotonic time before which this beat does not try to take the lease (`hand_over`)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = Outage("store (lease)", logger)
        self._report_outage = Outage("store (beat status)", logger)

    @property
    def token(self) -> int | None:
        """The fencing token while this beat leads and its lease cannot have expired."""
        with self._lock:
            if self._token is not None and time.monotonic() < self._valid_until:
                return self._token
            return None

    @property
    def leading(self) -> bool:
        return self.token is not None

    @property
    def store_failing(self) -> bool:
        """True while this thread's last lease write failed (the store is not back yet)."""
        return self._outage.down

    def start(self) -> None:
        """Try once now (a lone beat leads from its first tick), then keep trying in a thread.

        The thread reports that first round at once, so the status appears as soon as beat runs.
        """
        delay = self.run_round(report=False)
        self._thread = threading.Thread(
            target=self._run, args=(delay,), name="periodic-lease", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and hand the lease back so a standby need not wait for it to expire."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            token, self._token = self._token, None
        if token is not None:
            try:
                self.store.release_lease(self.holder, token)
            except StoreError as error:
                logger.warning("could not release the lease: %s", error)

    def step_down(self, reason: str) -> None:
        """Stop leading now (the store refused our token); the thread keeps trying to lead."""
        with self._lock:
            was = self._token
            self._token = None
        if was is not None:
            logger.warning("stepping down (%s); continuing as standby", reason)

    def hand_over(self, reason: str, stand_by: float) -> None:
        """Give the lease back and leave it to another beat for `stand_by` seconds.

        For a leader that holds the lease but cannot lead (its ticks keep failing for a reason
        of its own, not the store's or the broker's): renewing from the healthy lease thread
        would keep every standby out for good. A standby takes the released lease at its next
        round; a lone beat takes it back after `stand_by` and starts over with a full load.
        """
        with self._lock:
            token, self._token = self._token, None
            self._standing_by_until = time.monotonic() + stand_by
        if token is None:
            return
        logger.error("handing the lease over (%s); standing by for %.1fs", reason, stand_by)
        try:
            self.store.release_lease(self.holder, token)
        except StoreError as error:
            logger.warning("could not release the lease (it lapses within its TTL): %s", error)

    def _run(self, delay: float) -> None:
        self._report()
        while not self._stop.wait(delay):
            delay = self.run_round()

    def _status(self, leading: bool) -> BeatStatus | None:
        if self.status is None:
            return None
        try:
            return self.status(leading)
        except Exception:
            logger.exception("beat status not built; the lease timer carries on")
            return None

    def _report(self) -> None:
        """Write the status after a standby's round; a store fault is logged, never raised."""
        if self.status is None or self._stop.is_set():
            return
        leading = self.leading
        status = self._status(leading)
        if status is None:
            return
        try:
            if leading and self.forget_after is not None:
                self.store.prune_beats(self.forget_after)
            self.store.record_beat(status)
        except StoreError as error:
            self._report_outage.failed(error)
            return
        self._report_outage.succeeded()

    def run_round(self, report: bool = True) -> float:
        """One renewal or take-over attempt, with the status unless `report` is False; returns
        the seconds until the next one."""
        interval = self.ttl.total_seconds() / 3
        started = time.monotonic()
        with self._lock:
            token = self._token
            standing_by = self._standing_by_until - started
        reported = False
        try:
            if token is not None:
                self._renew(token, started, report)
                return interval
            if standing_by > 0.0:
                delay = min(interval, standing_by)
            else:
                delay, reported = self._try_acquire(started, interval, report)
        except StoreError as error:
            self._outage.failed(error)
            self._lapse_if_expired()
            return min(interval, max(_MIN_POLL, self._outage.wait()))
        if report and not reported:
            self._report()
        return delay

    def _renew(self, token: int, started: float, report: bool) -> None:
        status = self._status(True) if report else None
        renewed = self.store.renew_lease(
            self.holder, token, self.ttl, status=status, forget_after=self.forget_after
        )
        self._outage.succeeded()
        with self._lock:
            if renewed and self._token == token:
                self._valid_until = started + self.ttl.total_seconds()
                return
            self._token = None
        logger.warning("lost the lease (token %d); continuing as standby", token)

    def _try_acquire(self, started: float, interval: float, report: bool) -> tuple[float, bool]:
        """A standby's round: the wait until the next one, and whether the status went with it
        (the look records it while another beat leads; after a take-over, `_report` does)."""
        status = self._status(False) if report and not self._stop.is_set() else None
        held = self.store.watch_lease(self.holder, status=status)
        if held is not None:
            self._outage.succeeded()
            if status is not None:
                self._report_outage.succeeded()
            return self._until_expiry(held, interval), True
        lease = self.store.acquire_lease(self.holder, self.ttl)
        if lease is not None:
            self._outage.succeeded()
            with self._lock:
                self._token = lease.token
                self._valid_until = started + self.ttl.total_seconds()
                self.generation += 1
            logger.info("leading: took the beat lease (token %d)", lease.token)
            # From the lease thread only: the first round runs on the caller's thread, which
            # goes on to lead by itself (a nudge then would only cut its first sleep short).
            if self.on_lead is not None and threading.current_thread() is self._thread:
                self.on_lead()
            return interval, False
        # Another beat took it between the look and the attempt: how long its lease runs.
        current = self.store.current_lease()
        self._outage.succeeded()
        if current is None:
            return _MIN_POLL, False
        return self._until_expiry(current, interval), False

    def _until_expiry(self, current: LeaseRecord, interval: float) -> float:
        until_expiry = current.seconds_left(self.clock())
        return min(interval, max(_MIN_POLL, until_expiry + 0.01))

    def _lapse_if_expired(self) -> None:
        with self._lock:
            if self._token is not None and time.monotonic() >= self._valid_until:
                logger.warning("lease expired while the store was unreachable; standing by")
                self._token = None
