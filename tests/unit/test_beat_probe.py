"""`python -m scheduling.beat.probe`: a beat container is healthy while its status row is fresh."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduling.beat.probe import STALE_AFTER, run_probe
from scheduling.store import BeatStatus, Store

TTL = timedelta(seconds=10)


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(
        f'[app]\ndatabase_url = "sqlite:///{tmp_path / "p.db"}"\n[beat]\nlease_ttl = "10s"\n'
    )
    for key in [k for k in os.environ if k.startswith("PERIODIC_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PERIODIC_SETTINGS", str(path))
    return path


def report(tmp_path: Path, hostname: str, age: timedelta, role: str = "standby") -> None:
    with Store.open(f"sqlite:///{tmp_path / 'p.db'}") as store:
        last = datetime.now(UTC) - age
        store.record_beat(BeatStatus(f"{hostname}:1:x", hostname, 1, role, last, None))  # type: ignore[arg-type]


def test_a_fresh_standby_is_healthy(settings_file: Path, tmp_path: Path) -> None:
    report(tmp_path, "beat-1", timedelta(seconds=5))
    assert run_probe(["beat-1"]) == 0


def test_a_stale_report_is_unhealthy(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report(tmp_path, "beat-1", STALE_AFTER * TTL + timedelta(seconds=1), role="leader")
    assert run_probe(["beat-1"]) == 1
    assert "no beat on beat-1 reported recently" in capsys.readouterr().err


def test_another_hosts_beat_does_not_count(settings_file: Path, tmp_path: Path) -> None:
    report(tmp_path, "beat-2", timedelta(seconds=1))
    assert run_probe(["beat-1"]) == 1


def test_an_unreachable_store_is_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        '[app]\ndatabase_url = "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=1"\n'
    )
    monkeypatch.setenv("PERIODIC_SETTINGS", str(path))
    assert run_probe(["beat-1"]) == 1
    assert "beat probe:" in capsys.readouterr().err
