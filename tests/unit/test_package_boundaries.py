"""Package hygiene: sorted public API, and `scheduling` never importing `project` (SPEC §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import scheduling

ROOT = Path(__file__).parents[2]


def test_public_api_is_sorted_and_importable() -> None:
    assert scheduling.__all__ == sorted(scheduling.__all__)
    for name in scheduling.__all__:
        assert getattr(scheduling, name) is not None


def test_scheduling_never_imports_project() -> None:
    offenders = []
    for path in (ROOT / "scheduling").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "project"]
    assert offenders == []


def test_no_catch_all_modules() -> None:
    banned = {"utils.py", "helpers.py", "misc.py", "common.py"}
    found = [p for p in ROOT.glob("*/**/*.py") if p.name in banned and ".nox" not in p.parts]
    assert found == []
