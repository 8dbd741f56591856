"""Hot reload: an edit is noticed and validated; a bad edit is logged and changes nothing."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduling.beat.config_watch import SettingsWatcher
from scheduling.config.loading import load_settings
from scheduling.config.settings import Settings
from scheduling.errors import ScheduleValidationError

ENTRY = """
[schedule.ping]
task = "scheduling.tasks.heartbeat.heartbeat"
every = "{every}"
"""


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_an_edit_yields_the_new_settings_once(write_settings: Callable[..., Path]) -> None:
    path = write_settings(ENTRY.format(every="10s"))
    watcher = SettingsWatcher(path, load_settings)
    assert watcher.poll() is None
    write_settings(ENTRY.format(every="20s"))
    bump_mtime(path)
    changed = watcher.poll()
    assert changed is not None
    assert changed.schedule["ping"].every is not None
    assert changed.schedule["ping"].every.total_seconds() == 20
    assert watcher.poll() is None


def test_touched_says_the_file_moved_until_the_next_poll(
    write_settings: Callable[..., Path],
) -> None:
    path = write_settings(ENTRY.format(every="10s"))
    watcher = SettingsWatcher(path, load_settings)
    assert not watcher.touched()
    write_settings(ENTRY.format(every="20s"))
    bump_mtime(path)
    assert watcher.touched()
    assert watcher.touched()  # asking reads nothing and consumes nothing
    assert watcher.poll() is not None
    assert not watcher.touched()


def test_touching_without_a_change_is_not_a_change(write_settings: Callable[..., Path]) -> None:
    path = write_settings(ENTRY.format(every="10s"))
    watcher = SettingsWatcher(path, load_settings)
    bump_mtime(path)
    assert watcher.poll() is None


def test_an_invalid_edit_is_logged_and_ignored(
    write_settings: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = write_settings(ENTRY.format(every="10s"))
    watcher = SettingsWatcher(path, load_settings)
    write_settings(ENTRY.format(every="often"))
    bump_mtime(path)
    with caplog.at_level(logging.ERROR, logger="scheduling.beat.config_watch"):
        assert watcher.poll() is None
        assert watcher.poll() is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "schedule.ping.every" in messages[0]
    assert "last good schedule keeps running" in messages[0]


def test_registry_validation_runs_on_every_edit(write_settings: Callable[..., Path]) -> None:
    path = write_settings(ENTRY.format(every="10s"))

    def reject(settings: Settings, source: str) -> None:
        raise ScheduleValidationError(source, ["schedule.ping.task: not registered"])

    watcher = SettingsWatcher(path, load_settings, reject)
    write_settings(ENTRY.format(every="20s"))
    bump_mtime(path)
    assert watcher.poll() is None
