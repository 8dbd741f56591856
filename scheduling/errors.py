"""The exception tree of `scheduling`, in a leaf module to avoid import loops.

    SchedulingError
    ├── ConfigError            settings.toml (or its environment overrides) is unusable
    │   └── ScheduleValidationError   an entry does not fit the task registry or the queues
    ├── CronError              a cron expression is malformed (field and allowed range named)
    ├── StoreError             the schedule store cannot be read or written
    │   ├── EntryNotFound
    │   ├── EntryExists
    │   └── ConfigOwnedEntry   an API write to an entry that settings.toml owns
    ├── LeaseLost              this beat is no longer the leader (fencing token moved on)
    └── PublishError           the broker did not confirm a message

Configuration errors are raised at load and name the file, the table and the field; runtime
faults (store, broker) are raised to the scheduler loop, which logs and retries them.
"""

from __future__ import annotations


class SchedulingError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(SchedulingError):
    """Settings cannot be used. `problems` lists one line per offending field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: invalid configuration\n{lines}")


class ScheduleValidationError(ConfigError):
    """A schedule entry names an unknown task, queue or arguments that do not bind."""


class CronError(SchedulingError, ValueError):
    """A cron expression is malformed. Subclasses ValueError so pydantic reports it per field."""


class StoreError(SchedulingError):
    """The store failed; transient faults (locked, unreachable) are retried by callers."""


class EntryNotFound(StoreError):
    pass


class EntryExists(StoreError):
    pass


class ConfigOwnedEntry(StoreError):
    """The entry is declared in settings.toml; change it there, not through the API."""


class LeaseLost(SchedulingError):
    pass


class PublishError(SchedulingError):
    """The broker refused or did not confirm a publish in time."""
