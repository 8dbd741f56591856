from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

MINIMAL = """
[queues.high]
priority = 9
[queues.default]
default = true
[queues.low]
priority = 1
"""


@pytest.fixture
def write_settings(tmp_path: Path) -> Callable[[str], Path]:
    """Write a settings file (queues high/default/low plus `body`) and return its path."""

    def write(body: str, *, with_queues: bool = True) -> Path:
        path = tmp_path / "settings.toml"
        text = (MINIMAL if with_queues else "") + textwrap.dedent(body)
        path.write_text(text, encoding="utf-8")
        return path

    return write
