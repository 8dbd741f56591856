"""Only registered tasks can be scheduled, with arguments that bind to their signature."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery

from scheduling.config.loading import load_settings
from scheduling.config.registry import validate_against_registry
from scheduling.errors import ScheduleValidationError


@pytest.fixture
def registry() -> Celery:
    app = Celery("registry-test", set_as_current=False)

    @app.task(name="reports.send_run_report", shared=False)
    def send_run_report(recipients: list[str], period: str = "24h") -> None:
        """A task with a required argument."""

    @app.task(name="reports.ping", bind=True, shared=False)
    def ping(self: object) -> None:
        """A bound task: `self` is not an argument to schedule."""

    return app


def check(path: Path, app: Celery) -> None:
    validate_against_registry(load_settings(path), app.tasks, str(path))


def error_of(path: Path, app: Celery) -> str:
    with pytest.raises(ScheduleValidationError) as caught:
        check(path, app)
    return str(caught.value)


def test_registered_task_with_binding_arguments_passes(
    write_settings: Callable[[str], Path], registry: Celery
) -> None:
    path = write_settings(
        """
        [schedule.report]
        task = "reports.send_run_report"
        cron = "0 8 * * mon-fri"
        kwargs = { recipients = ["ops@example.com"] }
        [schedule.ping]
        task = "reports.ping"
        every = "30s"
        """
    )
    check(path, registry)


def test_unknown_task_suggests_the_closest_registered_names(
    write_settings: Callable[[str], Path], registry: Celery
) -> None:
    path = write_settings('[schedule.report]\ntask = "reports.send_run_reprot"\nevery = "1h"\n')
    message = error_of(path, registry)
    assert (
        "schedule.report.task: 'reports.send_run_reprot' is not a registered Celery task" in message
    )
    assert "did you mean 'reports.send_run_report'" in message


def test_plain_function_that_is_not_a_task_is_rejected(
    write_settings: Callable[[str], Path], registry: Celery
) -> None:
    path = write_settings('[schedule.x]\ntask = "os.getcwd"\nevery = "1h"\n')
    assert "is not a registered Celery task" in error_of(path, registry)


@pytest.mark.parametrize(
    ("arguments", "field", "fragment"),
    [
        ("", "kwargs", "missing a required argument: 'recipients'"),
        ("args = [['a'], '1h', 'extra']", "args", "too many positional arguments"),
        (
            "kwargs = { recipients = [], colour = 'red' }",
            "kwargs",
            "unexpected keyword argument 'colour'",
        ),
    ],
)
def test_arguments_must_bind_to_the_signature(
    write_settings: Callable[[str], Path],
    registry: Celery,
    arguments: str,
    field: str,
    fragment: str,
) -> None:
    path = write_settings(
        f'[schedule.report]\ntask = "reports.send_run_report"\nevery = "1h"\n{arguments}\n'
    )
    message = error_of(path, registry)
    assert f"schedule.report.{field}: arguments do not match" in message
    assert fragment in message


def test_bound_task_takes_no_self_argument(
    write_settings: Callable[[str], Path], registry: Celery
) -> None:
    path = write_settings('[schedule.ping]\ntask = "reports.ping"\nevery = "1h"\nargs = [1]\n')
    assert "schedule.ping.args" in error_of(path, registry)
