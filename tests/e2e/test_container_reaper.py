"""Containers of test processes that died before their cleanup are removed by the next test run;
those of live processes (this one, another session on the same engine) stay."""

from __future__ import annotations

import os
import subprocess

import pytest

from project.devtools.engine import find_engine
from project.devtools.images import image_set, missing_images
from project.errors import ImageBuildError
from tests.support.reaper import COMPOSE_PREFIX, OWNER_LABEL, reap_orphans

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def engine() -> tuple[str, str]:
    """(DOCKER_HOST, an image with `sleep`) or a skip saying what is missing."""
    host = find_engine()
    if host is None:
        pytest.skip("no Docker engine answers (`nox -s images` starts one where it can)")
    try:
        image = image_set().app
    except ImageBuildError as error:
        pytest.skip(f"no image names for this machine: {error}")
    if missing_images(host, image_set()):
        pytest.skip("the images are missing: run `nox -s images`")
    return host, image


def run_sleeper(host: str, image: str, label: str) -> str:
    command = ["docker", "--host", host, "run", "--detach", "--network", "host"]
    command += ["--label", label, "--entrypoint", "sleep", image, "600"]
    started = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return started.stdout.strip()


def existing(host: str) -> set[str]:
    listed = subprocess.run(
        ["docker", "--host", host, "ps", "--all", "--no-trunc", "--format", "{{.ID}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(listed.stdout.split())


def test_orphans_go_and_live_owners_keep_theirs(engine: tuple[str, str]) -> None:
    host, image = engine
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs: the owner that was killed
    orphan = run_sleeper(host, image, f"{OWNER_LABEL}={gone.pid}")
    compose_orphan = run_sleeper(
        host, image, f"com.docker.compose.project={COMPOSE_PREFIX}{gone.pid}-a1b2c3"
    )
    mine = run_sleeper(host, image, f"{OWNER_LABEL}={os.getpid()}")
    unrelated = run_sleeper(host, image, "periodic.test.unrelated=1")
    try:
        reap_orphans(host)
        left = existing(host)
        assert orphan not in left
        assert compose_orphan not in left
        assert {mine, unrelated} <= left
    finally:
        subprocess.run(
            ["docker", "--host", host, "rm", "--force", orphan, compose_orphan, mine, unrelated],
            capture_output=True,
            timeout=60,
            check=False,
        )
