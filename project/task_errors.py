"""Exceptions of the worker side: what tasks raise, and which of them are worth a retry.

    ProjectError
    ├── TransientError             retried with backoff by `PeriodicTask` (a later try may work)
    │   ├── MailUnavailable        SMTP server unreachable, timed out or answered 4xx
    │   └── WebhookUnavailable     5xx, timeout or connection failure
    ├── DeliveryLimitExceeded      a message came back more than worker.max_deliveries times
    ├── MailRejected               the SMTP server refused (5xx, authentication)
    ├── WebhookRefused             URL not allowed (host not listed, private address): no request
    └── WebhookFailed              the server answered with an unexpected status

A leaf module, so the plain functions (mailer, webhook client) and the task wrappers share the
tree without importing each other. Every exception pickles with its message only, because Celery
ships failures from the pool child to the main process.
"""

from __future__ import annotations

from project.errors import ProjectError

__all__ = [
    "DeliveryLimitExceeded",
    "MailRejected",
    "MailUnavailable",
    "TransientError",
    "WebhookFailed",
    "WebhookRefused",
    "WebhookUnavailable",
]


class TransientError(ProjectError):
    """A failure that may go away by itself; tasks retry it with exponential backoff."""


class DeliveryLimitExceeded(ProjectError):
    """The broker delivered one message too often (a poison message); it is dead-lettered."""


class MailUnavailable(TransientError):
    pass


class MailRejected(ProjectError):
    pass


class WebhookUnavailable(TransientError):
    pass


class WebhookRefused(ProjectError):
    """The call was not made: the URL, its host or its resolved address is not allowed."""


class WebhookFailed(ProjectError):
    pass
