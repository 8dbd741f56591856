"""The entry form: fields to a definition (validated like the API) and a definition back."""

from __future__ import annotations

from datetime import UTC, datetime

from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.flask.dashboard.forms import form_values, parse_form, preview

HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"


def test_a_valid_form_becomes_the_definition_an_api_body_would() -> None:
    result = parse_form(
        {"name": " nightly ", "task": HEARTBEAT, "cron": "30 2 * * *", "timezone": "",
         "kwargs": '{"to": ["ops@example.com"]}', "enabled": "on", "max_runs": "3"}
    )  # fmt: skip

    assert result.problems == {}
    assert result.name == "nightly"
    assert result.definition == ScheduleEntry.model_validate(
        {"task": HEARTBEAT, "cron": "30 2 * * *", "kwargs": {"to": ["ops@example.com"]},
         "max_runs": 3}
    )  # fmt: skip


def test_problems_are_filed_under_their_fields() -> None:
    result = parse_form({"task": HEARTBEAT, "cron": "0 25 * * *", "args": "[1,", "jitter": "soon"})

    assert result.definition is None
    assert "hour 25 is out of range" in result.problems["cron"][0]
    assert result.problems["args"][0].startswith("not JSON")
    assert "jitter" in result.problems


def test_two_kinds_is_a_form_level_problem() -> None:
    result = parse_form({"task": HEARTBEAT, "cron": "0 2 * * *", "every": "1h"})

    assert result.problems[""] == [
        "exactly one of every, cron, at, solar is required (found: every, cron)"
    ]


def test_unchecked_enabled_disables() -> None:
    result = parse_form({"task": HEARTBEAT, "every": "1h"})

    assert result.definition is not None
    assert result.definition.enabled is False


def test_form_values_round_trip() -> None:
    definition = ScheduleEntry.model_validate(
        {"task": HEARTBEAT, "solar": "sunset", "latitude": 52.5, "longitude": 13.4,
         "args": [1, "x"], "expires": "never", "catchup": "all", "description": "lights"}
    )  # fmt: skip

    values = form_values(definition, "lights")

    assert values["solar"] == "sunset"
    assert values["args"] == '[1, "x"]'
    assert values["expires"] == "never"
    assert values["enabled"] == "on"
    assert parse_form(values).definition == definition


def test_preview_words_and_times() -> None:
    definition = ScheduleEntry(task=HEARTBEAT, cron="0 18 * * fri#L", timezone="Europe/Berlin")

    shown = preview(definition, Settings(), datetime(2026, 1, 1, tzinfo=UTC))

    assert shown.words == "at 18:00 on the last Friday"
    assert shown.zone == "Europe/Berlin"
    assert shown.times[0] == datetime(2026, 1, 30, 17, 0, tzinfo=UTC)
    assert len(shown.times) == 5
