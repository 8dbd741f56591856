"""How the dashboard words instants, durations and states, and where it may redirect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduling.flask.dashboard.display import duration, local_time, relative, state_tone
from scheduling.flask.dashboard.sessions import safe_next

NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (timedelta(seconds=12), "in 12 s"),
        (timedelta(seconds=-200), "3 min ago"),
        (timedelta(hours=5), "in 5 h"),
        (timedelta(days=-3), "3 days ago"),
        (timedelta(milliseconds=300), "now"),
    ],
)
def test_relative_times(offset: timedelta, words: str) -> None:
    assert relative(NOW + offset, NOW) == words


def test_local_time_names_the_zone_across_dst() -> None:
    assert local_time(NOW, "Europe/Berlin") == "2026-03-29 01:30:00 CET"
    assert local_time(NOW + timedelta(hours=1), "Europe/Berlin") == "2026-03-29 03:30:00 CEST"
    assert local_time(None) == "—"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.0123, "0.01 s"), (14.4, "14 s"), (125, "2 min 5 s"), (3780, "1 h 3 min"), (None, "")],
)
def test_durations(seconds: float | None, words: str) -> None:
    assert duration(seconds) == words


def test_state_tones() -> None:
    assert state_tone("succeeded") == "ok"
    assert state_tone("failed") == "bad"
    assert state_tone("missed") == "warn"
    assert state_tone("started") == "info"
    assert state_tone("something-new") == "info"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/entries/ping", "/entries/ping"),
        ("/?after=x", "/?after=x"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_safe_next_stays_on_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
