"""When a broker image is named, the session's broker really is that container.

`nox` names one (PERIODIC_TEST_RABBITMQ_IMAGE) whenever `nox -s images` left an engine and the
image behind; this test makes the CI log say that the integration suite ran against it, rather
than against a local node that a silent fallback could have put in its place.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import docker
import pytest

from tests.support.brokers import BROKER_URL_ENV, RABBITMQ_IMAGE_ENV, rabbitmq_image


def test_the_session_broker_runs_in_the_named_image(request: pytest.FixtureRequest) -> None:
    if os.environ.get(BROKER_URL_ENV, "").strip():
        pytest.skip(f"{BROKER_URL_ENV} chooses the broker")
    if not os.environ.get(RABBITMQ_IMAGE_ENV, "").strip():
        pytest.skip(f"{RABBITMQ_IMAGE_ENV} is not set: the broker may be a local node")
    broker_url: str = request.getfixturevalue("broker_url")
    port = str(urlsplit(broker_url).port)
    client = docker.from_env()
    try:
        ours = [
            container
            for container in client.containers.list(filters={"ancestor": rabbitmq_image()})
            if f"RABBITMQ_NODE_PORT={port}" in container.attrs["Config"]["Env"]
        ]
    finally:
        client.close()
    assert len(ours) == 1, f"no running {rabbitmq_image()} container listens on {port}"
    assert ours[0].attrs["HostConfig"]["NetworkMode"] == "host"
