"""settings.toml: values beyond the supported bounds are refused at load, naming the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scheduling.config.loading import load_settings
from scheduling.errors import ConfigError

Write = Callable[..., Path]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("cron = '* * * * *'\njitter = '100000000d'", "schedule.ping.jitter: must be at most 1d"),
        ("every = '5s'\nmisfire_grace = '1000000d'", "schedule.ping.misfire_grace: must be at"),
        ("every = '5s'\nexpires = '3000000d'", "schedule.ping.expires"),
        ("every = '1s'\nstart = 9999-12-31T23:59:58Z", "schedule.ping.start: must lie between"),
        ("at = 8999-12-31T23:00:00-12:00", "schedule.ping.at: must lie between"),
        ("every = '1s'\nend = 1969-12-31T00:00:00Z", "schedule.ping.end: must lie between"),
        ("at = 0", "schedule.ping.at: expected an ISO-8601 instant"),
        (
            "every = '5s'\nkwargs = { a = " + "[" * 40 + "1" + "]" * 40 + " }",
            "schedule.ping.kwargs: nests more than 32 levels deep",
        ),
    ],
)
def test_out_of_range_values_name_the_field(
    write_settings: Write, fields: str, expected: str
) -> None:
    path = write_settings(f"[schedule.ping]\ntask = 't'\n{fields}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert expected in str(caught.value)


def test_definition_size_is_bounded_and_configurable(write_settings: Write) -> None:
    entry = "[schedule.big]\ntask = 't'\nevery = '5s'\ndescription = '" + "d" * 70_000 + "'\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write_settings(entry))
    assert "schedule.big: args, kwargs and description take 70" in str(caught.value)
    assert "[app].max_definition_size (65536)" in str(caught.value)
    raised = write_settings("[app]\nmax_definition_size = 131072\n" + entry)
    assert load_settings(raised).schedule["big"].size() > 70_000
