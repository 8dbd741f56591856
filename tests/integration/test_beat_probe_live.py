"""compose.yaml's beat healthcheck against a real beat: healthy while it runs, not after."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from tests.support.processes import REPO_ROOT, celery_beat, clean_env

pytestmark = pytest.mark.integration

SETTINGS = """
[app]
database_url = "sqlite:///{database}"
[broker]
url = "{broker_url}"
[beat]
lease_ttl = "1s"
[queues.{queue}]
default = true
"""


def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scheduling.beat.probe"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), **env},
        timeout=60,
        check=False,
    )


def test_the_probe_passes_while_beat_runs_and_fails_once_it_stopped(
    tmp_path: Path, broker_url: str
) -> None:
    queue = f"probe-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS.format(broker_url=broker_url, queue=queue, database=tmp_path / "p.db"))
    env = clean_env({"PERIODIC_SETTINGS": str(path)})
    beat = celery_beat(tmp_path, env)
    try:
        beat.wait_for(r"leading: took the beat lease", timeout=60)
        running = probe(env)
        assert running.returncode == 0, running.stderr
        assert "leader on" in running.stdout
    finally:
        beat.stop()
        with Connection(broker_url) as connection:
            connection.default_channel.queue_delete(queue)
    deadline = time.monotonic() + 20
    while (stopped := probe(env)).returncode == 0:
        assert time.monotonic() < deadline, stopped.stdout
        time.sleep(0.5)
    assert "reported recently" in stopped.stderr
