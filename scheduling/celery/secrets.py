"""Secrets by name in task arguments, resolved only on the worker.

An argument ``{"$secret": "WEBHOOK_TOKEN"}`` (`scheduling.config.secret_refs`) is replaced by the
value just before the task body runs (`PeriodicTask.__call__`). The message, the ledger, the API
and the logs only ever carry the name.

Values come from the worker's environment, as ``PERIODIC_SECRET_<NAME>`` (the prefix keeps a
write token from asking for, say, the database URL), or from ``[worker].secrets_file``: lines of
``NAME=value`` (``#`` comments), readable by the worker's user only. Both are read once per
worker process, at the first task that needs a secret. A name neither provides fails the run
with `SecretNotFound` (never retried: waiting does not create a secret).

A task body may put a value it was given into an exception (``raise ValueError(f"401 for
{token}")``). Before such an exception leaves the task, `withhold_secrets` masks every value the
call resolved in its message, in the exceptions chained to it and in a retry's cause, so the
ledger, the worker log, task events and the API show ``<secret>`` instead. An exception whose
class builds its message from elsewhere (its own ``__str__``) and still shows a value is
replaced by `SecretWithheld`, which names its class only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from scheduling.config.secret_refs import ENV_PREFIX, SECRET_NAME
from scheduling.errors import SecretNotFound, SecretWithheld

__all__ = ["MASK", "SecretSource", "read_secrets_file", "withhold_secrets"]

MASK = "<secret>"
_INNER = ("exc", "reason")
"""Attributes by which Celery's control-flow exceptions carry a cause (`Retry`, `Reject`)."""


def read_secrets_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines; a malformed line is an error naming the file and line, not value."""
    found: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, secret = stripped.partition("=")
        name = name.strip()
        if not sep or not SECRET_NAME.match(name):
            raise SecretNotFound(f"{path}:{number}: expected NAME=value with an upper-case NAME")
        found[name] = secret.strip()
    return found


class SecretSource:
    """The secrets of one worker process, read once (environment, then the file)."""

    def __init__(self, environ: Mapping[str, str], secrets_file: Path | None) -> None:
        self._environ = environ
        self._file = secrets_file
        self._lock = threading.Lock()
        self._values: dict[str, str] | None = None

    @classmethod
    def of_process(cls, secrets_file: str | None) -> SecretSource:
        return cls(os.environ, Path(secrets_file) if secrets_file else None)

    def values(self) -> dict[str, str]:
        with self._lock:
            if self._values is None:
                values: dict[str, str] = {}
                if self._file is not None:
                    try:
                        values.update(read_secrets_file(self._file))
                    except OSError as error:
                        raise SecretNotFound(
                            f"cannot read [worker].secrets_file {self._file}: {error.strerror}"
                        ) from None
                for key, value in self._environ.items():
                    if key.startswith(ENV_PREFIX) and SECRET_NAME.match(key[len(ENV_PREFIX) :]):
                        values[key[len(ENV_PREFIX) :]] = value
                self._values = values
            return self._values


def _mask(text: str, values: Collection[str]) -> str:
    for value in values:
        text = text.replace(value, MASK)
    return text


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every exception reachable from it: causes, contexts and Celery's causes."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked: list[Any] = [current.__cause__, current.__context__]
        linked += [getattr(current, attr, None) for attr in _INNER]
        stack.extend(item for item in linked if isinstance(item, BaseException))


def _shows(error: BaseException, values: Collection[str]) -> bool:
    try:
        shown = f"{error}{error!r}"
    except Exception:
        return True  # a message that cannot even be built is withheld rather than trusted
    return any(value in shown for value in values)


def withhold_secrets(error: BaseException, values: Collection[str]) -> BaseException:
    """Mask `values` in the messages of `error` and its chain, in place (see module doc).

    Returns `error`, or a `SecretWithheld` to raise instead when its message still shows a
    value. A cause that still shows one is swapped for a `SecretWithheld` in the chain.
    """
    ordered = sorted((value for value in values if value), key=len, reverse=True)
    if not ordered:
        return error
    for current in _chain(error):
        current.args = tuple(
            _mask(arg, ordered) if isinstance(arg, str) else arg for arg in current.args
        )
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            current.__notes__ = [_mask(str(note), ordered) for note in notes]
        # Text kept in attributes too (Celery's `Retry.excs` is the cause's repr, made early).
        attributes = getattr(current, "__dict__", {})
        for key, value in list(attributes.items()):
            if isinstance(value, str):
                attributes[key] = _mask(value, ordered)
    for current in list(_chain(error)):
        for attr in ("__cause__", "__context__", *_INNER):
            inner = getattr(current, attr, None)
            if isinstance(inner, BaseException) and _shows(inner, ordered):
                try:
                    setattr(current, attr, _stand_in(inner))
                except (AttributeError, TypeError):
                    return _stand_in(error)
    if _shows(error, ordered):
        return _stand_in(error)
    return error


def _stand_in(error: BaseException) -> SecretWithheld:
    stand_in = SecretWithheld(
        f"{type(error).__qualname__} raised with a secret value in its message; "
        "the message is withheld"
    )
    stand_in.__suppress_context__ = True
    return stand_in
