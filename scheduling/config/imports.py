"""Importing the task modules named in ``[app].imports`` before anything is validated.

Web, worker, beat and every CLI command call `import_task_modules` first, so a team's own tasks
are registered (``@shared_task`` binds them to every Celery app) before the schedule is checked
against the registry. A module that cannot be imported is a configuration error naming the file,
the field and the module, with the cause; nothing starts half-configured.
"""

from __future__ import annotations

import importlib

from scheduling.config.settings import Settings
from scheduling.errors import ConfigError

__all__ = ["import_task_modules"]


def import_task_modules(settings: Settings, source: str) -> None:
    """Import every module of ``[app].imports``; raise `ConfigError` listing each failure."""
    problems: list[str] = []
    for index, module in enumerate(settings.app.imports):
        try:
            importlib.import_module(module)
        except Exception as error:  # an import runs arbitrary code: report whatever it raised
            problems.append(
                f"app.imports.{index}: cannot import {module!r}: {type(error).__name__}: {error}"
            )
    if problems:
        raise ConfigError(source, problems)
