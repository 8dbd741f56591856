"""Reading settings at the edge: the TOML file, ``PERIODIC_*`` overrides, actionable errors.

`load_settings` is the only function in the code base that reads the settings file or the
environment. Every problem it reports names the file (or the environment variable that set the
value), the table and the field, and says what was expected; all problems are reported at once.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from scheduling.config.settings import ENTRY_NAME, Settings
from scheduling.errors import ConfigError

SETTINGS_ENV = "PERIODIC_SETTINGS"
DEFAULT_SETTINGS_FILE = "settings.toml"
ENV_PREFIX = "PERIODIC_"


def settings_path(explicit: str | Path | None = None) -> Path:
    """The file to read: the argument, else ``$PERIODIC_SETTINGS``, else ``./settings.toml``."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(SETTINGS_ENV) or DEFAULT_SETTINGS_FILE)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the file; a missing file is an error, never a silent set of defaults."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            [f"file not found (set {SETTINGS_ENV} or pass --settings to name another file)"],
        ) from None
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file: {error.strerror}"]) from error
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(str(path), [f"not UTF-8 text (byte {error.start})"]) from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), [f"TOML syntax error: {error}"]) from error


def load_settings(path: str | Path | None = None) -> Settings:
    """Read, validate and cross-check the settings; raise `ConfigError` listing every problem."""
    file = settings_path(path)
    document = read_toml(file)
    return settings_from_document(document, source=str(file))


def settings_from_document(document: Mapping[str, Any], source: str) -> Settings:
    """Validate a parsed document (plus environment overrides) as if it came from `source`."""
    try:
        settings = Settings(**document)
    except ValidationError as error:
        raise ConfigError(source, [_describe(item) for item in error.errors()]) from None
    problems = cross_reference_problems(settings)
    if problems:
        raise ConfigError(source, problems)
    return settings


def cross_reference_problems(settings: Settings) -> list[str]:
    """What single fields cannot tell: names that must exist elsewhere in the file."""
    problems: list[str] = []
    known = ", ".join(sorted(settings.queues))
    if not settings.queues:
        problems.append("queues: at least one [queues.<name>] table is required")
    defaults = [name for name, queue in settings.queues.items() if queue.default]
    if len(defaults) > 1:
        problems.append(f"queues: only one queue may set default = true (found {defaults})")
    for glob, queue in settings.routes.items():
        if queue not in settings.queues:
            problems.append(f"routes.{glob!r}: unknown queue {queue!r}; declared queues: {known}")
    for name, entry in settings.schedule.items():
        if not ENTRY_NAME.match(name):
            problems.append(
                f"schedule.{name}: invalid entry name; use letters, digits and _ . : - "
                "(at most 200 characters, starting with a letter or digit)"
            )
        if entry.queue is not None and entry.queue not in settings.queues:
            problems.append(
                f"schedule.{name}.queue: unknown queue {entry.queue!r}; declared queues: {known}"
            )
    return problems


def route_for(task: str, routes: Mapping[str, str]) -> str | None:
    """The queue of the first `[routes]` glob that matches `task`, in file order."""
    for glob, queue in routes.items():
        if fnmatch.fnmatchcase(task, glob):
            return queue
    return None


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    path = ".".join(loc) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        message = "unknown key" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    elif error["type"] == "missing":
        message = "required field is missing"
    env_name = ENV_PREFIX + "__".join(loc).upper()
    origin = f" (set by environment variable {env_name})" if env_name in os.environ else ""
    return f"{path}: {message}{origin}"


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    """Field names of the model at `loc`; a dict table's free key (an entry name) is skipped."""
    model: Any = Settings
    index = 0
    while index < len(loc):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(loc[index])
        if field is None:
            return []
        model = field.annotation
        if get_origin(model) is dict:
            model = get_args(model)[1]
            index += 1
        index += 1
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []
