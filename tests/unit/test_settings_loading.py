"""settings.toml → Settings: every kind of bad input names the file, the table and the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from scheduling.config.loading import load_settings
from scheduling.errors import ConfigError

Write = Callable[..., Path]


def problems_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(str(path)), "the file is named first"
    return message


def test_shipped_settings_load() -> None:
    settings = load_settings(Path(__file__).parents[2] / "settings.toml")
    assert set(settings.queues) == {"high", "default", "low"}
    assert settings.default_queue == "default"
    assert settings.schedule["heartbeat"].every == timedelta(seconds=30)


def test_missing_file_is_an_error_not_defaults(tmp_path: Path) -> None:
    message = problems_of(tmp_path / "nope.toml")
    assert "file not found" in message


def test_settings_env_names_the_file(
    write_settings: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_settings('[schedule.ping]\ntask = "t"\nevery = "5s"\n')
    monkeypatch.setenv("PERIODIC_SETTINGS", str(path))
    assert "ping" in load_settings().schedule


def test_toml_syntax_error_names_line_and_column(write_settings: Write) -> None:
    path = write_settings("[schedule.ping]\ntask = \n", with_queues=False)
    message = problems_of(path)
    assert "TOML syntax error: Invalid value (at line 2, column 8)" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[broker]\nurll = 'amqp://'\n", "broker.urll: unknown key; allowed keys: url,"),
        ("[bogus]\nx = 1\n", "bogus: unknown key"),
        (
            "[schedule.daily-report]\ntask = 't'\nevery = '1h'\ncronn = '* * * * *'\n",
            "schedule.daily-report.cronn: unknown key; allowed keys: task, every, cron",
        ),
        (
            "[queues.high]\npriority = 'x'\n",
            "queues.high.priority: Input should be a valid integer",
        ),
        (
            "[queues.low]\npriority = 12\n",
            "queues.low.priority: Input should be less than or equal to 9",
        ),
        (
            "[schedule.ping]\ntask = 't'\nevery = '5 parsecs'\n",
            "schedule.ping.every: '5 parsecs' is not a duration; expected a string like '90s'",
        ),
        (
            "[schedule.ping]\ntask = 't'\nevery = 30\n",
            "schedule.ping.every: 30 is not a duration",
        ),
        ("[schedule.ping]\ntask = 't'\ncron = '0 25 * * *'\n", "schedule.ping.cron: "),
        (
            "[schedule.ping]\ntask = 't'\nevery = '1m'\ntimezone = 'Mars/Olympus'\n",
            "schedule.ping.timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            "[app]\ntimezone = 'Europe/Berln'\n",
            "app.timezone: unknown time zone 'Europe/Berln'",
        ),
        (
            "[schedule.ping]\ntask = 't'\nevery = '1m'\ncron = '* * * * *'\n",
            "schedule.ping: exactly one of every, cron, at, solar is required (found: every, cron)",
        ),
        (
            "[schedule.ping]\ntask = 't'\n",
            "schedule.ping: exactly one of every, cron, at, solar is required (found: none)",
        ),
        (
            "[schedule.ping]\ntask = 't'\nsolar = 'sunrise'\n",
            "schedule.ping: solar needs latitude and longitude",
        ),
        (
            "[schedule.ping]\ntask = 't'\nsolar = 'sundown'\nlatitude = 1\nlongitude = 2\n",
            "schedule.ping.solar: Input should be 'dawn_astronomical'",
        ),
        (
            "[schedule.ping]\ntask = 't'\nsolar = 'sunset'\nlatitude = 91\nlongitude = 2\n",
            "schedule.ping.latitude: Input should be less than or equal to 90",
        ),
        (
            "[schedule.ping]\ntask = 't'\nevery = '1h'\nlatitude = 50.1\n",
            "schedule.ping: latitude only go with solar",
        ),
        ("[schedule.ping]\nevery = '1m'\n", "schedule.ping.task: required field is missing"),
        (
            "[schedule.ping]\ntask = 't'\nevery = '1m'\nqueue = 'hihg'\n",
            "schedule.ping.queue: unknown queue 'hihg'; declared queues: default, high, low",
        ),
        ("[routes]\n'project.*' = 'urgent'\n", "routes.'project.*': unknown queue 'urgent'"),
        (
            "[schedule.ping]\ntask = 't'\nevery = '1m'\ncatchup = 'some'\n",
            "schedule.ping.catchup: Input should be 'skip', 'latest' or 'all'",
        ),
        (
            "[schedule.ping]\ntask = 't'\nevery = '1m'\njitter = '2m'\n",
            "schedule.ping: jitter must be shorter than every",
        ),
        (
            "[schedule.ping]\ntask = 't'\nat = 2026-01-01T00:00:00\n",
            "schedule.ping.at: Input should have timezone info",
        ),
        (
            "[schedule.'bad name']\ntask = 't'\nevery = '1m'\n",
            "schedule.bad name: invalid entry name",
        ),
        ("[queues.default]\ndefault = true\n[queues.other]\ndefault = true\n", "only one queue"),
        (
            "[app]\nimports = ['acme.tasks', 'acme tasks']\n",
            "app.imports.1: 'acme tasks' is not a dotted Python module name",
        ),
        (  # a TOML basic string: the module name really ends in a newline
            '[app]\nimports = ["acme.tasks\\n"]\n',
            "is not a dotted Python module name",
        ),
        ("[app]\nimports = 'acme.tasks'\n", "app.imports: Input should be a valid list"),
    ],
)
def test_bad_input_names_table_and_field(write_settings: Write, body: str, expected: str) -> None:
    with_queues = "[queues." not in body
    message = problems_of(write_settings(body, with_queues=with_queues))
    assert expected in message


def test_every_problem_is_reported_at_once(write_settings: Write) -> None:
    path = write_settings(
        "[schedule.a]\ntask = 't'\nevery = 'x'\n[schedule.b]\ntask = 't'\ncron = 'nope'\n"
    )
    message = problems_of(path)
    assert "schedule.a.every" in message
    assert "schedule.b.cron" in message


def test_environment_beats_the_file_key_by_key(
    write_settings: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_settings("[broker]\nurl = 'amqp://file//'\nheartbeat = '45s'\n")
    monkeypatch.setenv("PERIODIC_BROKER__URL", "amqp://env//")
    settings = load_settings(path)
    assert settings.broker.url.get_secret_value() == "amqp://env//"
    assert settings.broker.heartbeat == timedelta(seconds=45)


def test_bad_environment_value_names_the_variable(
    write_settings: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERIODIC_BEAT__LEASE_TTL", "forever")
    message = problems_of(write_settings(""))
    assert "beat.lease_ttl" in message
    assert "PERIODIC_BEAT__LEASE_TTL" in message


def test_api_tokens_from_environment_json(
    write_settings: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PERIODIC_API__TOKENS",
        '[{"name": "ci", "secret": "s3cret-s3cret-s3cret", "scope": "write"}]',
    )
    settings = load_settings(write_settings(""))
    assert settings.api.tokens[0].scope == "write"
    assert "s3cret" not in repr(settings)


def test_secrets_never_appear_in_errors(write_settings: Write) -> None:
    body = """
    [broker]
    url = "amqp://admin:hunter2-hunter2@rabbit//"
    heartbeat = "soon"
    [[api.tokens]]
    name = "short"
    secret = "tiny-secret"
    scope = "admin"
    """
    message = problems_of(write_settings(body))
    assert "hunter2" not in message
    assert "tiny-secret" not in message
    assert "api.tokens.0.secret: a token secret must be at least 16 characters" in message
    assert "api.tokens.0.scope" in message
