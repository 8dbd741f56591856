"""Exception hierarchy of the Periodic project.

Every exception raised on purpose by project code derives from :class:`ProjectError`, so callers
can tell "Periodic refused or failed" apart from bugs and third-party errors.
"""

from __future__ import annotations

__all__ = ["BrokerNodeError", "EngineUnavailable", "ImageBuildError", "ProjectError", "ServeError"]


class ProjectError(Exception):
    """Base class of all errors raised on purpose by Periodic."""


class BrokerNodeError(ProjectError):
    """A throwaway local RabbitMQ node (see :mod:`project.devtools.localbroker`) failed to start
    or stop.

    The message carries the tail of the node's log so the cause is visible in a test report.
    """


class ServeError(ProjectError):
    """``python -m project.devtools.serve`` cannot bring the stack up; the message says what to
    do."""


class EngineUnavailable(ProjectError):
    """No Docker engine answers and none can be started here (see
    :mod:`project.devtools.engine`); the message says why, so a skip can name it."""


class ImageBuildError(ProjectError):
    """Building a local image (see :mod:`project.devtools.images`) failed; the message names the
    image and carries the tail of the build's output."""
