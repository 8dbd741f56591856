from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduling.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("1H 5M", timedelta(hours=1, minutes=5)),
        ("0s", timedelta(0)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_parses_human_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "m", "1x", "-5s", "1h1h", "5s1h junk", "1 hour"])
def test_rejects_malformed_durations_naming_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="expected a string like '90s'"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**10))
def test_format_round_trips(milliseconds: int) -> None:
    value = timedelta(milliseconds=milliseconds)
    assert parse_duration(format_duration(value)) == value
