"""Per-task time limits: validated in settings, compiled to annotations, applied to the task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scheduling.celery.app import create_celery
from scheduling.config.loading import load_settings
from scheduling.errors import ConfigError

LIMITS = """
[worker]
soft_time_limit = "1m"
time_limit = "2m"

[worker.time_limits."scheduling.tasks.webhooks.call_webhook"]
soft = "30s"
hard = "45s"

[worker.time_limits."scheduling.tasks.reports.send_run_report"]
soft = "90s"
"""


def test_limits_from_settings_apply_to_the_named_tasks_only(
    write_settings: Callable[[str], Path],
) -> None:
    app = create_celery(load_settings(write_settings(LIMITS)))
    webhook = app.tasks["scheduling.tasks.webhooks.call_webhook"]
    report = app.tasks["scheduling.tasks.reports.send_run_report"]
    purge = app.tasks["scheduling.tasks.maintenance.purge_runs"]
    assert (webhook.soft_time_limit, webhook.time_limit) == (30.0, 45.0)
    assert (report.soft_time_limit, report.time_limit) == (90.0, 120.0), "hard: worker's"
    assert (purge.soft_time_limit, purge.time_limit) == (60.0, 120.0), "the worker's limits"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[worker.time_limits."t"]\nsoft = "1m"\nhard = "30s"\n', "soft must be shorter than hard"),
        ('[worker.time_limits."t"]\n', "set soft, hard or both"),
        ('[worker.time_limits."t"]\nsoft = "20m"\n', "the soft limit (20m) must be shorter"),
        ('[worker]\nsoft_time_limit = "5m"\ntime_limit = "1m"\n', "soft_time_limit must be"),
        ('[worker.time_limits."t"]\nsoft = "1s"\nbogus = 1\n', "unknown key"),
    ],
)
def test_inconsistent_limits_are_configuration_errors(
    write_settings: Callable[[str], Path], body: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_settings(body))
    assert message in str(caught.value)
    assert "worker" in str(caught.value)
