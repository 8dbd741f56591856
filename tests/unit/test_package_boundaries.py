"""Package hygiene (SPEC §1, STYLE): the library stands alone, the reference service is thin.

* `scheduling` never imports `project`;
* the reference service's runtime modules (`project.app`, `project.worker`) use only the
  library's public surfaces (`scheduling`, `scheduling.flask`, `scheduling.celery`) and never the
  developer tooling in `project.devtools`;
* every public surface has a sorted `__all__` whose names exist;
* no two top-level classes or functions of the same name do different things in either package;
* no catch-all modules.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PUBLIC_SURFACES = ("scheduling", "scheduling.celery", "scheduling.flask")
RUNTIME_MODULES = ("project/app.py", "project/worker.py")


def isort_style(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("surface", PUBLIC_SURFACES)
def test_public_api_is_sorted_and_importable(surface: str) -> None:
    module = importlib.import_module(surface)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_style)
    for name in exported:
        assert getattr(module, name) is not None


def test_scheduling_never_imports_project() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "scheduling").rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] == "project"
    ]
    assert offenders == []


@pytest.mark.parametrize("relative", RUNTIME_MODULES)
def test_the_reference_service_uses_only_public_surfaces(relative: str) -> None:
    names = imported_modules(ROOT / relative)
    ours = [name for name in names if name.split(".")[0] in {"scheduling", "project"}]
    assert ours, f"{relative} imports nothing of ours?"
    assert [name for name in ours if name not in PUBLIC_SURFACES] == []


def test_nothing_outside_devtools_imports_devtools() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in ("scheduling", "project")
        for path in (ROOT / package).rglob("*.py")
        if "devtools" not in path.parts
        for name in imported_modules(path)
        if name.startswith("project.devtools")
    ]
    assert offenders == []


def test_no_two_top_level_definitions_share_a_name() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for package in ("scheduling", "project"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    where[node.name].append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def test_no_catch_all_modules() -> None:
    banned = {"utils.py", "helpers.py", "misc.py", "common.py"}
    found = [p for p in ROOT.glob("*/**/*.py") if p.name in banned and ".nox" not in p.parts]
    assert found == []
