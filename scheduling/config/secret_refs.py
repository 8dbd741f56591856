"""Secret references in task arguments: ``{"$secret": "NAME"}`` stands for a value only the
worker knows (see `scheduling.celery.secrets`, which resolves them).

An entry's definition is readable by every read token, shown on the dashboard and copied into
every task message, so it must never hold a credential; it names the secret instead. This
module is the grammar (checked where definitions enter) and the substitution; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scheduling.errors import SecretNotFound

__all__ = [
    "ENV_PREFIX",
    "REFERENCE_KEY",
    "has_secret_refs",
    "resolve_secrets",
    "secret_ref_problems",
]

REFERENCE_KEY = "$secret"
ENV_PREFIX = "PERIODIC_SECRET_"
SECRET_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,127}\Z")


def _ref_name(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1 and REFERENCE_KEY in value:
        name = value[REFERENCE_KEY]
        return name if isinstance(name, str) else ""
    return None


def secret_ref_problems(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, message) for each malformed reference in `value` (for validation at the door)."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        name = _ref_name(item)
        if name is not None:
            if not SECRET_NAME.match(name):
                problems.append(
                    (where, "a secret name is upper case letters, digits and _ (like API_TOKEN)")
                )
            continue
        if isinstance(item, dict):
            if REFERENCE_KEY in item:
                problems.append((where, f'"{REFERENCE_KEY}" must be the only key of its object'))
            stack.extend((child, f"{where}.{key}") for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{index}") for index, child in enumerate(item))
    return problems


def has_secret_refs(value: Any) -> bool:
    if _ref_name(value) is not None:
        return True
    if isinstance(value, dict):
        return any(has_secret_refs(child) for child in value.values())
    if isinstance(value, list | tuple):
        return any(has_secret_refs(child) for child in value)
    return False


def secret_names(value: Any) -> set[str]:
    """The names `value`'s ``{"$secret": NAME}`` references ask for."""
    name = _ref_name(value)
    if name is not None:
        return {name}
    children: Any = ()
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list | tuple):
        children = value
    found: set[str] = set()
    for child in children:
        found |= secret_names(child)
    return found


def resolve_secrets(value: Any, secrets: Mapping[str, str]) -> Any:
    """`value` with every ``{"$secret": NAME}`` replaced by the secret (a new structure)."""
    name = _ref_name(value)
    if name is not None:
        if name not in secrets:
            raise SecretNotFound(
                f"secret {name!r} is not set on this worker: set {ENV_PREFIX}{name} in its "
                "environment or add it to [worker].secrets_file"
            )
        return secrets[name]
    if isinstance(value, dict):
        return {key: resolve_secrets(child, secrets) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_secrets(child, secrets) for child in value]
    return value
