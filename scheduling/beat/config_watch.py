"""Hot reload of settings.toml: notice an edit, validate it fully, hand over only a good one.

Beat looks at the file once per sync interval (from its sleep, `touched`, then a tick `poll`s).
The check is a `stat` (modification time and size);
only when that moved is the file read and hashed, so touching it or saving it unchanged costs
nothing further. A changed file goes through the same loader and registry validation as at
start-up; if it fails, its problems are logged once and the last good schedule keeps running
until the file changes again. `scheduling` never imports the app: the loader and the validation
are callables passed in by the scheduler.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from scheduling.beat.slotplan import entry_shape
from scheduling.config.settings import Settings
from scheduling.errors import ConfigError
from scheduling.store import Store, SyncSummary

__all__ = ["SettingsWatcher", "sync_schedule"]

logger = logging.getLogger(__name__)

Loader = Callable[[Path], Settings]
Validator = Callable[[Settings, str], None]


def _no_validation(settings: Settings, source: str) -> None:
    return None


def sync_schedule(
    store: Store,
    settings: Settings,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    *,
    actor: str = "settings.toml",
) -> SyncSummary:
    """Write the config-owned entries of `settings` to the store (create, update, prune).

    Each entry's first slot after `now` goes along; the store uses it only for new entries and
    changed definitions, so an unchanged entry keeps its place in time. API-owned entries are
    never touched; a config name that an API entry already has is a `ConfigError`. The
    entries' history names `actor` (``settings:<path>``) for each change.
    """
    next_runs: dict[str, datetime | None] = {}
    for index, (name, entry) in enumerate(settings.schedule.items(), start=1):
        next_runs[name] = entry_shape(entry, settings).timetable.next_after(now)
        if progress is not None and index % 1000 == 0:
            progress(1000)
    if progress is not None:
        progress(len(next_runs) % 1000)
    return store.sync_config(settings.schedule, next_runs, actor=actor)


class SettingsWatcher:
    """Watches one settings file; `poll()` returns new, valid settings once per accepted edit."""

    def __init__(self, path: Path, load: Loader, validate: Validator = _no_validation) -> None:
        self.path = path
        self.load = load
        self.validate = validate
        self._stamp = self._stat()
        self._digest = self._hash()

    def touched(self) -> bool:
        """Whether the file's modification time or size moved since the last `poll` (one
        `stat`, nothing read): cheap enough for an idle beat's sleep to ask every second."""
        return self._stat() != self._stamp

    def poll(self) -> Settings | None:
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        digest = self._hash()
        if digest is None or digest == self._digest:
            return None
        self._digest = digest
        try:
            settings = self.load(self.path)
            self.validate(settings, str(self.path))
        except ConfigError as error:
            logger.error(
                "settings change rejected, the last good schedule keeps running: %s", error
            )
            return None
        logger.info("settings changed: %s reloaded", self.path)
        return settings

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _hash(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError as error:
            logger.error(
                "cannot read %s (%s); the last good schedule keeps running", self.path, error
            )
            return None
