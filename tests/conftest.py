"""Shared fixtures: the RabbitMQ and the databases the integration tests talk to."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from pluggy import Result

from project.devtools.localbroker import LocalRabbitNode, rabbitmq_server_available
from scheduling.store import Store
from tests.support.brokers import provide_broker
from tests.support.databases import (
    PostgresUnavailable,
    create_test_database,
    drop_test_database,
    reset_schema,
)
from tests.support.processes import log_tails, started_count


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """AMQP URL of the session's broker (env URL, testcontainers or a local node; SPEC §10)."""
    with provide_broker(tmp_path_factory.mktemp("broker")) as url:
        yield url


@pytest.fixture
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitNode]:
    """A fresh, running node of this test's own, free to stop, kill and restart; stopped after.

    Never the session broker. Needs the Debian package rabbitmq-server (not Docker).
    """
    if not rabbitmq_server_available():
        pytest.fail(
            "this test stops and restarts a broker, so it needs a throwaway local node: "
            "apt-get install rabbitmq-server (the system service may stay stopped)",
            pytrace=False,
        )
    node = LocalRabbitNode(tmp_path_factory.mktemp("rabbit-node"))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh ``periodic_test_<random>`` database for the session; dropped after.

    Skips (with the reason) only when PostgreSQL does not answer.
    """
    try:
        url = create_test_database()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        yield url
    finally:
        drop_test_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store database: a SQLite file under tmp_path, or the session's PostgreSQL
    database with its schema wiped."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'periodic.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_schema(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An opened (migrated) Store on `store_url`; closed after the test."""
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()


_FIRST_PROCESS = pytest.StashKey[int]()
"""How many child processes had been started when the test began (`tests.support.processes`)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    item.stash[_FIRST_PROCESS] = started_count()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    """A failed test's report carries the end of the log of every beat, worker or server it
    started: CI keeps no temporary files, and a timing fault is read from those logs."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and _FIRST_PROCESS in item.stash:
        for name, tail in log_tails(item.stash[_FIRST_PROCESS]):
            report.sections.append((name, tail))
