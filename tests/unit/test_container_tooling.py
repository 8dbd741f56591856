"""Container tooling decisions that need no engine: which engine, which mirror, which images."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from project.devtools import engine, images
from project.errors import EngineUnavailable, ImageBuildError


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_engine_that_does_not_answer_is_seen_quickly(tmp_path: Path) -> None:
    begun = time.monotonic()
    assert not engine.engine_answers(f"tcp://127.0.0.1:{closed_port()}", timeout=1.0)
    assert not engine.engine_answers(f"unix://{tmp_path / 'absent.sock'}", timeout=1.0)
    assert not engine.engine_answers("ssh://somewhere")
    assert time.monotonic() - begun < 3.0


def test_a_socket_that_answers_ping_is_an_engine(tmp_path: Path) -> None:
    path = tmp_path / "fake.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        server.settimeout(5)

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

        thread = threading.Thread(target=answer)
        thread.start()
        assert engine.engine_answers(f"unix://{path}")
        thread.join()


def test_an_explicit_docker_host_is_never_second_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"tcp://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("DOCKER_HOST", dead)
    assert engine.find_engine() is None
    with pytest.raises(EngineUnavailable, match="does not answer"):
        engine.ensure_engine()


def test_the_private_engine_needs_dockerd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "find_engine", lambda: None)
    monkeypatch.setattr(engine.shutil, "which", lambda name: None)
    with pytest.raises(EngineUnavailable, match=r"apt-get install docker\.io"):
        engine.ensure_engine()


def test_the_mirror_and_suite_come_from_deb822_sources() -> None:
    text = (
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian-security\n"
        "Suites: bookworm-security\n"
    )
    entries = images._sources_entries(text, deb822=True)
    assert ("http://deb.debian.org/debian", "bookworm") in entries
    assert ("http://deb.debian.org/debian-security", "bookworm-security") in entries


def test_one_line_sources_are_read_too() -> None:
    text = "# comment\ndeb [arch=amd64] http://mirror.example/debian trixie main\ndeb-src x y z\n"
    assert images._sources_entries(text, deb822=False) == [
        ("http://mirror.example/debian", "trixie")
    ]


def test_image_names_for_each_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "apt_mirror", lambda: ("http://deb.debian.org/debian", "trixie"))
    local = images.image_set("local")
    assert local.rabbitmq == "periodic/rabbitmq:trixie"
    assert local.environment()["PERIODIC_TEST_RABBITMQ_IMAGE"] == local.rabbitmq
    official = images.image_set("official")
    assert official.rabbitmq.startswith("rabbitmq:")
    assert official.postgres.startswith("postgres:")
    assert official.app == local.app == "periodic:latest"


def test_an_unknown_image_source_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERIODIC_IMAGES", "registry")
    with pytest.raises(ImageBuildError, match="PERIODIC_IMAGES='registry'"):
        images.image_source()
