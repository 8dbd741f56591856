"""`{"$secret": NAME}` arguments: only the worker resolves them (from [worker].secrets_file or
its environment); the message, the ledger and the API carry the name, never the value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduling.celery.secrets import MASK
from scheduling.store import RunState
from tests.support.worker_stage import WorkerStage, worker_stage

pytestmark = pytest.mark.integration

TOKEN = "Bearer s3cr3t-value-never-logged"


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[WorkerStage]:
    directory = tmp_path_factory.mktemp("secrets")
    secrets = directory / "worker-secrets"
    secrets.write_text(f"# worker only\nWEBHOOK_TOKEN={TOKEN}\n", encoding="utf-8")
    extra = f'secrets_file = "{secrets}"\n'  # goes into the stage's [worker] table
    with worker_stage(directory, broker_url, roles=("default",), extra_settings=extra) as s:
        worker = s.start_worker("default", "secret-worker")
        yield s
        assert TOKEN.split()[1] not in worker.output(), "the secret reached the worker log"


def test_the_worker_resolves_a_secret_by_name(stage: WorkerStage, tmp_path: Path) -> None:
    out = tmp_path / "headers.json"
    headers = {"Authorization": {"$secret": "WEBHOOK_TOKEN"}, "X-Plain": "yes"}
    task_id = stage.send(
        "tests.support.worker_tasks.write_headers",
        "default",
        kwargs={"path": str(out), "headers": headers},
    )
    run = stage.wait_for_run(task_id, {RunState.SUCCEEDED})
    assert json.loads(out.read_text()) == {"Authorization": TOKEN, "X-Plain": "yes"}
    assert TOKEN not in repr(run)


def test_an_unknown_secret_fails_the_run_naming_it_but_no_value(
    stage: WorkerStage, tmp_path: Path
) -> None:
    headers = {"Authorization": {"$secret": "NOT_SET_ANYWHERE"}}
    task_id = stage.send(
        "tests.support.worker_tasks.write_headers",
        "default",
        kwargs={"path": str(tmp_path / "x"), "headers": headers},
    )
    run = stage.wait_for_run(task_id, {RunState.FAILED})
    assert run.error_type == "SecretNotFound"
    assert "NOT_SET_ANYWHERE" in (run.error_message or "")
    assert "PERIODIC_SECRET_NOT_SET_ANYWHERE" in (run.error_message or "")
    assert run.retries == 0


@pytest.mark.parametrize("transient", [False, True], ids=["failure", "retries"])
def test_an_exception_showing_a_secret_reaches_no_record(
    stage: WorkerStage, transient: bool
) -> None:
    """The body raises with the value in its message (and its cause's): the ledger, the run's
    retries and the worker's log (checked when the module's worker stops) show the mask."""
    task_id = stage.send(
        "tests.support.worker_tasks.fail_showing",
        "default",
        kwargs={"token": {"$secret": "WEBHOOK_TOKEN"}, "transient": transient},
    )
    run = stage.wait_for_run(task_id, {RunState.FAILED}, timeout=60)
    assert run.error_type == ("TransientError" if transient else "ValueError")
    assert run.error_message == f"the service said {503 if transient else 401} to {MASK}"
    assert run.retries == (3 if transient else 0)
    assert TOKEN.split()[1] not in repr(run)
