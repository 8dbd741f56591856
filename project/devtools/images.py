"""The container images of the Compose stack and the test broker, built without a registry.

``nox -s images`` (``python -m project.devtools.images``) makes sure a Docker engine answers
(:mod:`project.devtools.engine` starts a private one if needed) and provides three images:

========================  ==============================  =======================================
what                      ``PERIODIC_IMAGES=local``        ``PERIODIC_IMAGES=official``
========================  ==============================  =======================================
RabbitMQ                  ``periodic/rabbitmq:<suite>``   ``rabbitmq:3.13-management`` (pulled)
PostgreSQL                ``periodic/postgres:<suite>``   ``postgres:16.4-bookworm`` (pulled)
the app (``Dockerfile``)  ``periodic:latest`` FROM        ``periodic:latest`` FROM
                          ``periodic/python:<suite>``     ``python:3.11-slim-bookworm``
========================  ==============================  =======================================

``local`` (the default; this project's machines reach no container registry) builds everything
from Debian: ``periodic/base:<suite>`` is a ``debootstrap --variant=minbase`` of the suite and
mirror that this machine's apt uses, imported with ``docker import``; RabbitMQ, PostgreSQL and
Python come from Debian's packages on top of it (``containers/*/Dockerfile``).  ``official``, for
machines with a registry, pulls the images named in compose.yaml instead.

Nothing is rebuilt whose inputs did not change: the base image carries a label with the hash of
its inputs (suite, mirror, package list) and is re-bootstrapped only when that hash changes; the
others are ordinary ``docker build`` runs whose layers the engine caches (a warm run takes
seconds).  Builds use host networking (``--network host``): the private engine has no bridge.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from project.devtools.engine import data_root, ensure_engine
from project.errors import EngineUnavailable, ImageBuildError

__all__ = ["ImageSet", "build_images", "image_set", "missing_images"]

REPO: Final = Path(__file__).resolve().parents[2]
CONTAINERS: Final = REPO / "containers"
_INPUTS_LABEL: Final = "periodic.inputs"
_BASE_PACKAGES: Final = ("ca-certificates",)
_HOST_CA_DIR: Final = Path("/usr/local/share/ca-certificates")
_LOG_TAIL_LINES: Final = 40


@dataclass(frozen=True)
class ImageSet:
    """The image names the Compose override and the test broker use."""

    rabbitmq: str
    postgres: str
    app: str

    def environment(self) -> dict[str, str]:
        """The variables compose.local.yaml and tests/brokers.py read the names from."""
        return {
            "PERIODIC_RABBITMQ_IMAGE": self.rabbitmq,
            "PERIODIC_POSTGRES_IMAGE": self.postgres,
            "PERIODIC_APP_IMAGE": self.app,
            "PERIODIC_TEST_RABBITMQ_IMAGE": self.rabbitmq,
        }


def image_source() -> str:
    """``local`` or ``official`` (``PERIODIC_IMAGES``); anything else is an error naming it."""
    source = os.environ.get("PERIODIC_IMAGES", "local").strip() or "local"
    if source not in {"local", "official"}:
        msg = f"PERIODIC_IMAGES={source!r}: expected 'local' or 'official'"
        raise ImageBuildError(msg)
    return source


def apt_mirror() -> tuple[str, str]:
    """(mirror URI, suite) of the first Debian archive in this machine's apt sources.

    Reads deb822 ``*.sources`` files and one-line ``sources.list`` files; security and update
    suites are skipped (debootstrap needs the release itself).
    """
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    files += [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
    ]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri, suite in _sources_entries(text, deb822=path.suffix == ".sources"):
            if uri.rstrip("/").endswith("/debian") and re.fullmatch(r"[a-z]+", suite):
                return uri.rstrip("/"), suite
    msg = "no Debian archive found in /etc/apt/sources.list* (debootstrap needs a mirror)"
    raise ImageBuildError(msg)


def _sources_entries(text: str, deb822: bool) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(
                (key.strip().lower(), value.strip())
                for key, _, value in (
                    line.partition(":") for line in stanza.splitlines() if not line.startswith("#")
                )
                if value
            )
            if "deb" in fields.get("types", "").split():
                for uri in fields.get("uris", "").split():
                    entries += [(uri, suite) for suite in fields.get("suites", "").split()]
        return entries
    for line in text.splitlines():
        words = [word for word in line.split("#", 1)[0].split() if not word.startswith("[")]
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], words[2]))
    return entries


def image_set(source: str | None = None) -> ImageSet:
    """The names of the images for ``source`` (default: :func:`image_source`)."""
    if (source or image_source()) == "official":
        return ImageSet("rabbitmq:3.13-management", "postgres:16.4-bookworm", "periodic:latest")
    _, suite = apt_mirror()
    return ImageSet(f"periodic/rabbitmq:{suite}", f"periodic/postgres:{suite}", "periodic:latest")


class _Docker:
    """The ``docker`` CLI against one engine, each build's output kept in a log file."""

    def __init__(self, host: str, log_dir: Path, say: Callable[[str], None]) -> None:
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
        self.log_dir = log_dir
        self.say = say
        docker = shutil.which("docker")
        if docker is None:
            raise EngineUnavailable("the docker CLI is not installed (apt-get install docker.io)")
        self.docker = docker

    def label(self, image: str) -> str | None:
        """The inputs label of ``image``; None when the image does not exist."""
        result = subprocess.run(
            [self.docker, "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return None
        labels = json.loads(result.stdout or "null") or {}
        return str(labels.get(_INPUTS_LABEL, ""))

    def run(self, what: str, argv: list[str], stdin: int | None = None, cwd: Path = REPO) -> None:
        """Run one step, its output into ``<data root>/build-logs``; tail in the error."""
        log = self.log_dir / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', what)}.log"
        started = time.monotonic()
        with log.open("wb") as handle:
            result = subprocess.run(
                argv, env=self.env, cwd=cwd, stdin=stdin, stdout=handle, stderr=subprocess.STDOUT
            )
        took = time.monotonic() - started
        if result.returncode != 0:
            lines = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
            msg = f"{what} failed (exit {result.returncode}, log {log}):\n" + "\n".join(lines)
            raise ImageBuildError(msg)
        self.say(f"{what}: done in {took:.0f} s")

    def build(self, tag: str, context: Path, build_args: dict[str, str]) -> None:
        args = [
            arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")
        ]
        self.run(
            f"build {tag}",
            [self.docker, "build", "--network", "host", "-t", tag, *args, str(context)],
        )


def build_images(say: Callable[[str], None] = print) -> tuple[str, ImageSet]:
    """Provide every image (building or pulling what is missing); (DOCKER_HOST, names)."""
    source = image_source()
    host = ensure_engine()
    log_dir = data_root() / "build-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    docker = _Docker(host, log_dir, say)
    images = image_set(source)
    if source == "official":
        for image in (images.rabbitmq, images.postgres):
            docker.run(f"pull {image}", [docker.docker, "pull", "-q", image])
        docker.build(images.app, REPO, {})
        return host, images
    mirror, suite = apt_mirror()
    base = f"periodic/base:{suite}"
    python = f"periodic/python:{suite}"
    _bootstrap_base(docker, base, mirror, suite)
    docker.build(images.rabbitmq, CONTAINERS / "rabbitmq", {"BASE": base})
    docker.build(images.postgres, CONTAINERS / "postgres", {"BASE": base})
    with tempfile.TemporaryDirectory(prefix="periodic-python-") as tmp:
        context = Path(tmp)
        shutil.copy(CONTAINERS / "python" / "Dockerfile", context / "Dockerfile")
        certificates = context / "ca-certificates"
        certificates.mkdir()
        for crt in sorted(_HOST_CA_DIR.glob("*.crt")) if _HOST_CA_DIR.is_dir() else []:
            shutil.copy(crt, certificates / crt.name)
        docker.build(python, context, {"BASE": base})
    docker.build(images.app, REPO, {"PYTHON_IMAGE": python})
    return host, images


def _bootstrap_base(docker: _Docker, tag: str, mirror: str, suite: str) -> None:
    """``debootstrap`` + ``docker import``, skipped when the image's inputs label matches."""
    inputs = json.dumps(
        {"suite": suite, "mirror": mirror, "variant": "minbase", "include": _BASE_PACKAGES},
        sort_keys=True,
    )
    digest = hashlib.sha256(inputs.encode()).hexdigest()[:16]
    if docker.label(tag) == digest:
        docker.say(f"{tag}: up to date (inputs {digest})")
        return
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        msg = f"building {tag} needs debootstrap (apt-get install debootstrap)"
        raise ImageBuildError(msg)
    work = data_root() / "rootfs"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / suite
    rootfs.mkdir(parents=True)
    docker.run(
        f"debootstrap {suite}",
        [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(_BASE_PACKAGES)}",
            suite,
            str(rootfs),
            mirror,
        ],
    )
    # As in Debian's official images: services never start inside a build, apt keeps no caches.
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n'
        'APT::Install-Recommends "false";\n'
    )
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    try:
        docker.run(
            f"import {tag}",
            [docker.docker, "import", "--change", f"LABEL {_INPUTS_LABEL}={digest}", "-", tag],
            stdin=tar.stdout.fileno(),
        )
    finally:
        tar.stdout.close()
        tar.wait()
    shutil.rmtree(work, ignore_errors=True)


def missing_images(host: str, images: ImageSet) -> list[str]:
    """The names in ``images`` that the engine at ``host`` does not have."""
    docker = shutil.which("docker") or "docker"
    env = {**os.environ, "DOCKER_HOST": host}
    return [
        image
        for image in (images.rabbitmq, images.postgres, images.app)
        if subprocess.run(
            [docker, "image", "inspect", image], env=env, capture_output=True, check=False
        ).returncode
        != 0
    ]


def images_cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m project.devtools.images", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--env-file", type=Path, help="also write DOCKER_HOST and the image names here"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        host, images = build_images()
    except EngineUnavailable as error:
        print(f"no Docker engine: {error}", file=sys.stderr)
        return 3
    except ImageBuildError as error:
        print(error, file=sys.stderr)
        return 1
    lines = [f"DOCKER_HOST={host}", *(f"{k}={v}" for k, v in images.environment().items())]
    if args.env_file:
        args.env_file.write_text("\n".join(lines) + "\n")
    print(f"images ready in {time.monotonic() - started:.0f} s; use them with:")
    print("\n".join(f"  export {line}" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(images_cli())
