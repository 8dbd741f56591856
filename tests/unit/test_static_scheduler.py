"""`[beat].scheduler = "static"` in a fresh checkout: the schedule file's directory is created."""

from __future__ import annotations

from pathlib import Path

from scheduling.beat.static import StaticScheduler
from scheduling.celery import create_celery
from scheduling.config.settings import Settings


def test_the_schedule_files_directory_is_created(tmp_path: Path) -> None:
    schedule_file = tmp_path / "var" / "nested" / "celerybeat-schedule"
    settings = Settings(
        app={"database_url": f"sqlite:///{tmp_path / 'p.db'}"},
        beat={"scheduler": "static", "schedule_file": str(schedule_file)},
    )
    app = create_celery(settings)
    scheduler = StaticScheduler(app=app, schedule_filename=app.conf.beat_schedule_filename)
    try:
        assert schedule_file.parent.is_dir()
    finally:
        scheduler.close()
    assert list(schedule_file.parent.iterdir())
