"""`{"$secret": NAME}` references: the grammar checked at the door, substitution on the worker,
and where a worker finds values (prefixed environment, a secrets file), never echoing one."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduling.celery.secrets import SecretSource, read_secrets_file
from scheduling.config.loading import load_settings
from scheduling.config.secret_refs import has_secret_refs, resolve_secrets, secret_ref_problems
from scheduling.errors import ConfigError, SecretNotFound


def test_references_are_replaced_wherever_they_nest() -> None:
    value = {"a": [{"$secret": "ONE"}, "plain"], "b": {"c": {"$secret": "TWO"}}}
    assert has_secret_refs(value)
    assert not has_secret_refs({"a": ["plain"]})
    resolved = resolve_secrets(value, {"ONE": "1", "TWO": "2"})
    assert resolved == {"a": ["1", "plain"], "b": {"c": "2"}}
    assert value["b"] == {"c": {"$secret": "TWO"}}, "the definition itself is not changed"


def test_a_missing_secret_names_itself_and_where_to_set_it() -> None:
    with pytest.raises(SecretNotFound, match="PERIODIC_SECRET_NOPE"):
        resolve_secrets([{"$secret": "NOPE"}], {"OTHER": "value"})


def test_malformed_references_are_named_by_path() -> None:
    problems = secret_ref_problems({"h": {"$secret": "bad name"}, "x": [{"$secret": 3}]}, "kwargs")
    assert sorted(path for path, _ in problems) == ["kwargs.h", "kwargs.x.0"]


def test_only_prefixed_environment_variables_are_secrets(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("# comment\nFROM_FILE = file-value\nBOTH=file\n", encoding="utf-8")
    environ = {
        "PERIODIC_SECRET_BOTH": "env",
        "PERIODIC_APP__DATABASE_URL": "postgresql://u:pw@db/x",
        "HOME": "/root",
    }
    values = SecretSource(environ, secrets).values()
    assert values == {"FROM_FILE": "file-value", "BOTH": "env"}


def test_a_malformed_secrets_file_names_the_line_not_the_value(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("lower=hunter2\n", encoding="utf-8")
    with pytest.raises(SecretNotFound) as caught:
        read_secrets_file(secrets)
    assert f"{secrets}:1" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_settings_refuse_a_malformed_reference(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        '[schedule.hook]\ntask = "t"\nevery = "5s"\n'
        'kwargs = { headers = { Authorization = { "$secret" = "not ok" } } }\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"schedule\.hook\.kwargs\.headers\.Authorization"):
        load_settings(path)
