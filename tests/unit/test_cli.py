"""The `schedule` and `queues` command groups, through Click and through the real `flask` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from scheduling.beat.config_watch import sync_schedule
from scheduling.celery import create_celery
from scheduling.config.compiler import compile_entries
from scheduling.config.loading import load_settings
from scheduling.config.settings import ScheduleEntry
from scheduling.flask.cli import queues, schedule
from scheduling.operations.entries import create_entry, pause_entry
from scheduling.store import Store

ROOT = Path(__file__).parents[2]
HEARTBEAT = "scheduling.tasks.heartbeat.heartbeat"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(schedule, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_passes_on_the_shipped_settings() -> None:
    code, out, _ = run("check", "--settings", str(ROOT / "settings.toml"))
    assert code == 0, out
    assert "valid" in out
    assert "heartbeat" in out
    assert "NEXT_RUN_UTC" in out


def test_check_json_lists_compiled_entries(write_settings: Callable[[str], Path]) -> None:
    path = write_settings(f'[schedule.ping]\ntask = "{HEARTBEAT}"\nevery = "15m"\n')
    code, out, _ = run("check", "--settings", str(path), "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["valid"] is True
    (entry,) = payload["entries"]
    assert entry["name"] == "ping"
    assert entry["queue"] == "default"
    assert entry["next_run_utc"].endswith("Z")


def test_check_fails_with_exit_1_and_names_the_problem(
    write_settings: Callable[[str], Path],
) -> None:
    path = write_settings(
        '[schedule.ping]\ntask = "scheduling.tasks.heartbeat.heartbeet"\nevery = "1m"\n'
    )
    code, _, err = run("check", "--settings", str(path))
    assert code == 1
    assert str(path) in err
    assert "schedule.ping.task" in err
    assert "did you mean 'scheduling.tasks.heartbeat.heartbeat'" in err


def test_check_json_reports_problems(write_settings: Callable[[str], Path]) -> None:
    path = write_settings('[schedule.ping]\ntask = "x"\nevery = "soon"\n')
    code, out, _ = run("check", "--settings", str(path), "--json")
    assert code == 1
    payload = json.loads(out)
    assert payload["valid"] is False
    assert any(p.startswith("schedule.ping.every:") for p in payload["problems"])


def test_next_prints_zone_and_utc(write_settings: Callable[[str], Path]) -> None:
    path = write_settings(
        f'[schedule.report]\ntask = "{HEARTBEAT}"\ncron = "0 8 * * *"\ntimezone = "Europe/Berlin"\n'
    )
    code, out, _ = run(
        "next",
        "report",
        "-n",
        "2",
        "--after",
        "2026-03-28T12:00:00Z",
        "--settings",
        str(path),
        "--json",
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["timezone"] == "Europe/Berlin"
    assert answer["fire_times_local"] == [
        "2026-03-29T08:00:00+02:00",  # the first day of summer time
        "2026-03-30T08:00:00+02:00",
    ]
    assert answer["fire_times"] == ["2026-03-29T06:00:00Z", "2026-03-30T06:00:00Z"]


def test_next_usage_errors_exit_2(write_settings: Callable[[str], Path]) -> None:
    path = write_settings(f'[schedule.ping]\ntask = "{HEARTBEAT}"\nevery = "1m"\n')
    assert run("next", "nope", "--settings", str(path))[0] == 2
    assert run("next", "ping", "--after", "2026-01-01T00:00:00", "--settings", str(path))[0] == 2
    assert run("next", "ping", "-n", "0", "--settings", str(path))[0] == 2


@pytest.mark.parametrize(
    "after", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-12:00", "1969-06-01T00:00:00Z"]
)
def test_next_refuses_instants_out_of_range(
    write_settings: Callable[[str], Path], after: str
) -> None:
    path = write_settings(f'[schedule.ping]\ntask = "{HEARTBEAT}"\nevery = "1m"\n')
    code, _, err = run("next", "ping", "--after", after, "--settings", str(path))
    assert code == 2
    assert "--after" in err


def test_a_costly_preview_is_refused_fast(write_settings: Callable[[str], Path]) -> None:
    path = write_settings(f'[schedule.rare]\ntask = "{HEARTBEAT}"\ncron = "0 0 */31 2 1"\n')
    started = time.monotonic()
    code, _, err = run("next", "rare", "-n", "1000", "--settings", str(path))
    assert time.monotonic() - started < 2
    assert code == 2
    assert "ask for fewer" in err


def test_list_json(write_settings: Callable[[str], Path]) -> None:
    path = write_settings(
        f'[schedule.a]\ntask = "{HEARTBEAT}"\nevery = "1m"\nenabled = false\n'
        f'[schedule.b]\ntask = "{HEARTBEAT}"\ncron = "@daily"\n'
    )
    code, out, _ = run("list", "--file", "--settings", str(path), "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["a"]["enabled"] is False
    assert rows["b"]["timezone"] == "UTC"
    assert rows["b"]["source"] == "config"


def test_list_shows_the_stores_entries_api_owned_too(
    write_settings: Callable[[str], Path], tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'periodic.db'}"
    path = write_settings(
        f'[app]\ndatabase_url = "{database}"\n'
        f'[schedule.from-file]\ntask = "{HEARTBEAT}"\nevery = "1m"\n'
    )
    settings = load_settings(path)
    with Store.open(database) as store:
        sync_schedule(store, settings, datetime.now(UTC))
        definition = ScheduleEntry(task=HEARTBEAT, cron="0 8 * * *", timezone="Europe/Berlin")
        registry = create_celery(settings).tasks
        create_entry(store, settings, registry, "from-api", definition, datetime.now(UTC))
        pause_entry(store, "from-api")
    code, out, _ = run("list", "--settings", str(path), "--json")
    assert code == 0, out
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["from-file"]["source"] == "config"
    assert rows["from-api"]["source"] == "api"
    assert rows["from-api"]["paused"] is True
    assert rows["from-api"]["next_run"].endswith(("+01:00", "+02:00"))
    assert rows["from-api"]["next_run_utc"].endswith("Z")
    code, out, _ = run("list", "--settings", str(path))
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "SOURCE", "SCHEDULE"]
    (api_line,) = [line for line in lines if line.startswith("from-api")]
    assert " api " in api_line
    assert " paused " in api_line


@pytest.mark.parametrize("command", ["status", "declare"])
def test_queue_commands_with_the_broker_down_say_so_without_a_traceback(
    write_settings: Callable[[str], Path], command: str
) -> None:
    path = write_settings(
        '[broker]\nurl = "amqp://guest:guest@127.0.0.1:9//"\nconnect_timeout = "1s"\n'
    )
    result = CliRunner().invoke(queues, [command, "--settings", str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("broker unreachable: ")
    assert "PERIODIC_BROKER__URL" in result.stderr
    assert "Traceback" not in result.output


def test_real_flask_cli_reports_a_broken_file_without_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "settings.toml"
    broken.write_text("[schedule.x]\ntask = 'x'\nevery = '1m'\nbogus = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERIODIC_")}
    env["PERIODIC_SETTINGS"] = str(broken)
    env["PYTHONPATH"] = str(ROOT)  # the reference service runs from the checkout
    flask = Path(sys.executable).with_name("flask")
    result = subprocess.run(
        [str(flask), "--app", "project.app", "schedule", "check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "schedule.x.bogus: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_next_shows_exactly_what_the_library_computes(
    write_settings: Callable[[str], Path],
) -> None:
    """`schedule next` is a view of the time core, not a second implementation."""
    path = write_settings(
        f'[schedule.fold]\ntask = "{HEARTBEAT}"\ncron = "*/20 * * * *"\n'
        'timezone = "America/New_York"\n'
        f'[schedule.gap]\ntask = "{HEARTBEAT}"\ncron = "30 2 * * *"\ntimezone = "Europe/Berlin"\n'
        f'[schedule.anchored]\ntask = "{HEARTBEAT}"\nevery = "7m"\n'
        "start = 2026-03-01T00:03:00Z\n"
    )
    settings = load_settings(path)
    after = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # New York springs forward at 07:00Z
    for compiled in compile_entries(settings):
        code, out, _ = run(
            "next",
            compiled.name,
            "-n",
            "12",
            "--after",
            after.isoformat(),
            "--settings",
            str(path),
            "--json",
        )
        assert code == 0
        shown = [datetime.fromisoformat(t) for t in json.loads(out)["fire_times_local"]]
        assert shown == compiled.timetable.fire_times(after, 12)
        assert all(t.tzinfo is not None and t.utcoffset() is not None for t in shown)


def test_a_file_that_does_not_validate_still_gets_its_task_typos_reported(
    write_settings: Callable[[str], Path],
) -> None:
    path = write_settings(
        '[schedule.daily-report]\ntask = "scheduling.tasks.reports.send_run_reprot"\n'
        'cron = "0 25 * * *"\n'
    )
    code, _, err = run("check", "--settings", str(path))
    assert code == 1
    task, cron = err.splitlines()[1:]
    assert task.startswith("  - schedule.daily-report.task: ")
    assert task.endswith("did you mean 'scheduling.tasks.reports.send_run_report'?")
    assert cron.startswith("  - schedule.daily-report.cron: ")
