"""The exception tree of `scheduling`, in a leaf module to avoid import loops.

    SchedulingError
    ├── ConfigError            settings.toml (or its environment overrides) is unusable
    │   └── ScheduleValidationError   an entry does not fit the task registry or the queues
    ├── CronError              a cron expression is malformed (field and allowed range named)
    ├── StoreError             the schedule store cannot be read or written
    │   ├── EntryNotFound
    │   ├── EntryExists
    │   ├── UnreadableEntry    a stored definition does not parse at all (delete or rewrite it)
    │   └── ConfigOwnedEntry   an API write to an entry that settings.toml owns
    ├── LeaseLost              this beat is no longer the leader (fencing token moved on)
    ├── PublishError           the broker did not confirm a message
    ├── InvalidEntry           an API/dashboard/CLI write does not validate (fields named)
    ├── BrokerUnavailable      the broker cannot be reached or did not confirm (HTTP 503)
    ├── BatcherClosed          a run-now request came after its batcher was closed
    └── TaskError              raised by tasks on the worker side
        ├── TransientError             retried with backoff by `PeriodicTask`
        │   ├── MailUnavailable        SMTP server unreachable, timed out or answered 4xx
        │   └── WebhookUnavailable     5xx, timeout or connection failure
        ├── DeliveryLimitExceeded      a message came back more than worker.max_deliveries times
        ├── SecretNotFound             an argument names a secret the worker does not have
        ├── MailRejected               the SMTP server refused (5xx, authentication)
        ├── WebhookRefused             URL not allowed (host not listed, private address)
        └── WebhookFailed              the server answered with an unexpected status

Configuration errors are raised at load and name the file, the table and the field; runtime
faults (store, broker) are raised to the scheduler loop, which logs and retries them.
Task errors pickle with their message only, because Celery ships failures from the pool child
to the main process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BatcherClosed",
    "BrokerUnavailable",
    "ConfigError",
    "ConfigOwnedEntry",
    "CronError",
    "DeliveryLimitExceeded",
    "EntryExists",
    "EntryNotFound",
    "FieldProblem",
    "InvalidEntry",
    "LeaseLost",
    "MailRejected",
    "MailUnavailable",
    "PublishError",
    "ScheduleValidationError",
    "SchedulingError",
    "SecretNotFound",
    "SecretWithheld",
    "StoreError",
    "TaskError",
    "TransientError",
    "UnreadableEntry",
    "WebhookFailed",
    "WebhookRefused",
    "WebhookUnavailable",
]


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


class UnreadableEntry(StoreError):
    """A stored definition does not parse at all (written around Periodic): not an outage."""


class ConfigOwnedEntry(StoreError):
    """The entry is declared in settings.toml; change it there, not through the API."""


class LeaseLost(SchedulingError):
    pass


class PublishError(SchedulingError):
    """The broker refused or did not confirm a publish in time."""


@dataclass(frozen=True)
class FieldProblem:
    """One reason a request was refused: `path` is the field (dotted, "" for the whole body)."""

    path: str
    message: str


class InvalidEntry(SchedulingError):
    """A schedule definition does not validate; `problems` names every offending field."""

    def __init__(self, name: str, problems: Sequence[FieldProblem]) -> None:
        self.name = name
        self.problems = list(problems)
        listed = "; ".join(f"{p.path or '(body)'}: {p.message}" for p in self.problems)
        super().__init__(f"schedule {name!r} is invalid: {listed}")


class BrokerUnavailable(SchedulingError):
    """The broker cannot be reached or did not confirm a message (answer 503)."""


class BatcherClosed(SchedulingError):
    """A request came after `Batcher.close`; nothing was done for it."""


class TaskError(SchedulingError):
    """Raised on purpose by a task on the worker side."""


class TransientError(TaskError):
    """A failure that may go away by itself; tasks retry it with exponential backoff."""


class DeliveryLimitExceeded(TaskError):
    """The broker delivered one message too often (a poison message); it is dead-lettered."""


class SecretNotFound(TaskError):
    """A ``{"$secret": NAME}`` argument names a secret this worker does not have (by name only)."""


class SecretWithheld(TaskError):
    """Stands in for a task's exception whose message showed a resolved secret and could not
    be masked (its class builds the message itself); names the class, never the value."""


class MailUnavailable(TransientError):
    pass


class MailRejected(TaskError):
    pass


class WebhookUnavailable(TransientError):
    pass


class WebhookRefused(TaskError):
    """The call was not made: the URL, its host or its resolved address is not allowed."""


class WebhookFailed(TaskError):
    pass
