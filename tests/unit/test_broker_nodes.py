"""`[broker].url` as a list of cluster nodes: parsing, and connecting to whichever answers."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduling.broker.nodes import BrokerNodes, sanitize_nodes
from scheduling.config.compiler import compile_celery_config
from scheduling.config.loading import load_settings
from scheduling.errors import BrokerUnavailable, ConfigError

Write = Callable[..., Path]
SECRET = "s3cret-pass"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_toml_list_of_nodes_becomes_celerys_failover_url(write_settings: Write) -> None:
    path = write_settings(
        f'[broker]\nurl = ["amqp://u:{SECRET}@rabbit-1:5672/v", "amqp://u:{SECRET}@rabbit-2/v"]\n'
    )
    settings = load_settings(path)
    assert settings.broker.node_urls == [
        f"amqp://u:{SECRET}@rabbit-1:5672/v",
        f"amqp://u:{SECRET}@rabbit-2/v",
    ]
    assert compile_celery_config(settings)["broker_url"] == ";".join(settings.broker.node_urls)
    assert SECRET not in repr(settings.broker)
    shown = sanitize_nodes(settings.broker.url.get_secret_value())
    assert SECRET not in shown
    assert "rabbit-1:5672" in shown
    assert "rabbit-2" in shown


@pytest.mark.parametrize(
    "value",
    [
        f"amqp://u:{SECRET}@a//;amqp://u:{SECRET}@b//",
        f'["amqp://u:{SECRET}@a//", "amqp://u:{SECRET}@b//"]',
    ],
)
def test_the_environment_takes_semicolons_or_a_json_list(
    write_settings: Write, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PERIODIC_BROKER__URL", value)
    settings = load_settings(write_settings(""))
    assert settings.broker.node_urls == [f"amqp://u:{SECRET}@a//", f"amqp://u:{SECRET}@b//"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("[]", "non-empty list"),
        (f'["amqp://u:{SECRET}@a//", "rabbit-2"]', "node 2 is not a URL"),
    ],
)
def test_a_bad_node_list_names_the_field_but_never_the_password(
    write_settings: Write, url: str, expected: str
) -> None:
    path = write_settings(f"[broker]\nurl = {url}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "broker.url" in message
    assert expected in message
    assert SECRET not in message


def test_connecting_tries_every_node_and_names_them_without_passwords() -> None:
    ports = [closed_port(), closed_port()]
    nodes = BrokerNodes(";".join(f"amqp://u:{SECRET}@127.0.0.1:{port}//" for port in ports))
    with pytest.raises(BrokerUnavailable) as caught:
        nodes.connect(connect_timeout=1)
    message = str(caught.value)
    assert f"node 1 (127.0.0.1:{ports[0]})" in message
    assert f"node 2 (127.0.0.1:{ports[1]})" in message
    assert SECRET not in message
