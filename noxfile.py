"""Developer and CI sessions.

``nox`` runs the default set (what CI runs); ``nox -s serve`` runs the service.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

# The container tooling is stdlib-only, so nox's own interpreter can run it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from project.devtools.engine import find_engine
from project.devtools.images import build_images, image_set, image_source, missing_images
from project.errors import EngineUnavailable, ImageBuildError

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typing", "images", "tests", "faults", "e2e"]
nox.options.reuse_venv = "yes"

PYTHON = "3.11"


def run_pytest(session: nox.Session, path: str, env: dict[str, str] | None = None) -> None:
    """One suite; every suite must run tests, so pytest's "no tests collected" (5) fails it."""
    session.run("pytest", path, "-q", "-p", "no:cacheprovider", *session.posargs, env=env or {})


def container_env(session: nox.Session) -> dict[str, str]:
    """DOCKER_HOST and the image names when an engine answers and has the images, else {}.

    With them the integration suite's broker is a testcontainers RabbitMQ and the Compose e2e
    test runs; without them (logged) the broker is a local node and that test skips.
    """
    host = find_engine()
    if host is None:
        session.log("containers: no Docker engine answers (`nox -s images` starts one)")
        return {}
    try:
        names = image_set()
    except ImageBuildError as error:
        session.log(f"containers: {error}")
        return {}
    missing = missing_images(host, names)
    if missing:
        session.log(f"containers: {missing} missing on {host} (`nox -s images` builds them)")
        return {}
    session.log(f"containers: engine {host}, broker image {names.rabbitmq}")
    env = {"DOCKER_HOST": host, **names.environment()}
    if image_source() == "local":
        env["TESTCONTAINERS_RYUK_DISABLED"] = "true"  # Ryuk's image would come from a registry
    return env


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict over both packages."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=False)
def images(session: nox.Session) -> None:
    """Container images built here (no registry needed), cached in the engine between runs.

    Starts a private dockerd when none answers (project/devtools/engine.py); skipped, saying
    why, where none can start. PERIODIC_IMAGES=official pulls the official images instead.
    """
    try:
        host, names = build_images(say=session.log)
    except EngineUnavailable as error:
        session.skip(f"no Docker engine can start here: {error}")
    except ImageBuildError as error:
        session.error(str(error))
    for key, value in {"DOCKER_HOST": host, **names.environment()}.items():
        session.log(f"export {key}={value}")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit tests first (fast, no broker), then integration (real RabbitMQ and databases).

    The integration broker is a testcontainers RabbitMQ when `images` left an engine and the
    image behind, else a throwaway local node.
    """
    session.install("-e", ".[dev]")
    run_pytest(session, "tests/unit")
    run_pytest(session, "tests/integration", env=container_env(session))


@nox.session(python=PYTHON)
def faults(session: nox.Session) -> None:
    """Slow fault injection: killed workers and beats, a stopped broker."""
    session.install("-e", ".[dev]")
    run_pytest(session, "tests/faults")


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Real processes, a real headless browser, and compose.yaml under docker-compose."""
    session.install("-e", ".[dev]")
    run_pytest(session, "tests/e2e", env=container_env(session))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Beat benchmarks W0-W3 (Periodic on SQLite and PostgreSQL, stock Beat, RedBeat,
    sqlalchemy-celery-beat) and the HTTP API on both stores; writes docs/benchmarks.md (not a
    test). Needs Redis and a PostgreSQL that lets it create databases (see benchmarks/run.py)."""
    session.install("-e", ".[dev,bench]")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    # HTTP API in the shipped server model, under wrk (apt-get install -y wrk).
    session.run("python", "-m", "benchmarks.api_bench")
    session.run("python", "-m", "benchmarks.api_bench", "--postgresql")
    # Broker replication: quorum queue on a throwaway 3-node cluster vs classic on one node.
    session.run("python", "-m", "benchmarks.replication_bench")


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Run web, a worker per queue and beat as separate processes (Ctrl-C stops them all)."""
    session.install("-e", ".")
    # nox SIGKILLs a command 0.5 s after Ctrl-C by default; serve needs time to stop its children.
    session.run(
        "python",
        "-m",
        "project.devtools.serve",
        *session.posargs,
        interrupt_timeout=90.0,
        terminate_timeout=30.0,
    )
