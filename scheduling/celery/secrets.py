"""Secrets by name in task arguments, resolved only on the worker.

An argument ``{"$secret": "WEBHOOK_TOKEN"}`` (`scheduling.config.secret_refs`) is replaced by the
value just before the task body runs (`PeriodicTask.__call__`). The message, the ledger, the API
and the logs only ever carry the name.

Values come from the worker's environment, as ``PERIODIC_SECRET_<NAME>`` (the prefix keeps a
write token from asking for, say, the database URL), or from ``[worker].secrets_file``: lines of
``NAME=value`` (``#`` comments), readable by the worker's user only. Both are read once per
worker process, at the first task that needs a secret. A name neither provides fails the run
with `SecretNotFound` (never retried: waiting does not create a secret).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

from scheduling.config.secret_refs import ENV_PREFIX, SECRET_NAME
from scheduling.errors import SecretNotFound

__all__ = ["SecretSource", "read_secrets_file"]


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
