"""Periodic's reusable scheduling library: settings, time core, compiler, store and Beat scheduler.

It never imports `project`; anything app-specific (the Celery app, the task registry, how
settings are found) is passed in.
"""

from scheduling.config.compiler import CompiledEntry, compile_celery_config, compile_entries
from scheduling.config.loading import load_settings
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
    "StoreError",
    "Timetable",
    "compile_celery_config",
    "compile_entries",
    "load_settings",
]
