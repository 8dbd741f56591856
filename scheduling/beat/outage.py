"""Riding out a broker or database outage: capped exponential backoff, logged once per change.

Beat must never exit on a transient fault, and a beat that logs a traceback every half second
for the length of an outage buries the one line that matters. So each dependency has an
`Outage` that logs "unreachable" when it first fails and "back" when it recovers, and in
between only says how long to wait before the next attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Outage"]


class Outage:
    """The health of one dependency (``"broker"``, ``"store"``) as seen by beat."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        *,
        first_delay: float = 0.5,
        max_delay: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_down: Callable[[], None] | None = None,
        on_back: Callable[[], None] | None = None,
    ) -> None:
        """`on_down`/`on_back` run once when the dependency first fails and when it is back."""
        self.name = name
        self.on_down = on_down
        self.on_back = on_back
        self.logger = logger
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.clock = clock
        self.failures: int = 0
        self.since: float | None = None
        self.retry_at: float = 0.0

    @property
    def down(self) -> bool:
        return self.failures > 0

    def ready(self) -> bool:
        """True when no backoff is running (a call may be attempted now)."""
        return self.clock() >= self.retry_at

    def wait(self) -> float:
        """Seconds until the next attempt is allowed (0 when healthy)."""
        return float(max(0.0, self.retry_at - self.clock()))

    def failed(self, error: BaseException) -> float:
        """Record a failed attempt; return the delay before the next one."""
        now = self.clock()
        if self.failures == 0:
            self.since = now
            self.logger.error("%s unreachable: %s; retrying with backoff", self.name, error)
            if self.on_down is not None:
                self.on_down()
        else:
            self.logger.debug("%s still unreachable: %s", self.name, error)
        delay = min(self.max_delay, self.first_delay * 2.0**self.failures)
        self.failures += 1
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        if self.failures:
            lasted = self.clock() - (self.since or self.clock())
            self.logger.warning("%s back after %.1fs", self.name, lasted)
            if self.on_back is not None:
                self.on_back()
        self.failures = 0
        self.since = None
        self.retry_at = 0.0
