"""Periodic's library: settings, time core, compiler, store, beat, broker, Celery and Flask parts.

Public surfaces: this package (settings, time core, errors), `scheduling.celery` (`init_celery`,
`create_celery`), `scheduling.flask` (`Periodic`), and ``scheduling.scheduler:DatabaseScheduler``
for ``celery beat -S``. It never imports `project`; anything app-specific (the Celery app, the
task registry, where settings live) is passed in.
"""

from scheduling.config.compiler import CompiledEntry, compile_celery_config, compile_entries
from scheduling.config.imports import import_task_modules
from scheduling.config.loading import load_settings, settings_path
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.errors import (
    ConfigError,
    CronError,
    LeaseLost,
    PublishError,
    ScheduleValidationError,
    SchedulingError,
    StoreError,
)
from scheduling.timing.cron import CronExpression
from scheduling.timing.solar import SolarTimetable
from scheduling.timing.timetables import (
    CronTimetable,
    IntervalTimetable,
    OneOffTimetable,
    Timetable,
)

__all__ = [
    "CompiledEntry",
    "ConfigError",
    "CronError",
    "CronExpression",
    "CronTimetable",
    "IntervalTimetable",
    "LeaseLost",
    "OneOffTimetable",
    "PublishError",
    "ScheduleEntry",
    "ScheduleValidationError",
    "SchedulingError",
    "Settings",
    "SolarTimetable",
    "StoreError",
    "Timetable",
    "compile_celery_config",
    "compile_entries",
    "import_task_modules",
    "load_settings",
    "settings_path",
]
