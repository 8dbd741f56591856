"""Developer and CI sessions.

``nox`` runs the default set (what CI runs); ``nox -s serve`` runs the service.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typing", "tests", "faults", "e2e"]
nox.options.reuse_venv = "yes"

PYTHON = "3.11"


def run_pytest(session: nox.Session, path: str) -> None:
    """One suite; every suite must run tests, so pytest's "no tests collected" (5) fails it."""
    session.run("pytest", path, "-q", "-p", "no:cacheprovider", *session.posargs)


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


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit tests first (fast, no broker), then integration (real RabbitMQ and databases)."""
    session.install("-e", ".[dev]")
    run_pytest(session, "tests/unit")
    run_pytest(session, "tests/integration")


@nox.session(python=PYTHON)
def faults(session: nox.Session) -> None:
    """Slow fault injection: killed workers and beats, a stopped broker."""
    session.install("-e", ".[dev]")
    run_pytest(session, "tests/faults")


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Real processes and a real headless browser."""
    session.install("-e", ".[dev]")
    run_pytest(session, "tests/e2e")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Beat benchmarks W0-W3 vs stock Beat and RedBeat; writes docs/benchmarks.md (not a test)."""
    session.install("-e", ".[dev,bench]")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    # HTTP API: async views vs their sync twins under gunicorn + wrk (apt-get install -y wrk).
    session.run("python", "-m", "benchmarks.api_bench")
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
