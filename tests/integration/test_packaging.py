"""Installing Periodic does no harm: the wheel ships the library, not the reference service.

The wheel is built from a copy of the tracked files (so the checkout stays clean), installed
without dependencies into a fresh virtualenv, and inspected there: `scheduling` with its
templates and static files, no top-level `project` (a team's own ``project/`` still imports),
and no ``flask.commands`` entry points (no command appears in other Flask apps).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str, cwd: Path) -> str:
    result = subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the Periodic wheel in it; returns its python."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    tracked = run("git", "ls-files", "-co", "--exclude-standard", cwd=REPO_ROOT).splitlines()
    for name in tracked:
        origin = REPO_ROOT / name
        if origin.is_file():
            target = source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    dist = work / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
        str(source), cwd=work)  # fmt: skip
    (wheel,) = dist.glob("periodic-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "virtualenv", "--quiet", str(venv), cwd=work)
    python = venv / "bin" / "python"
    run(str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel), cwd=work)
    return python


def site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(run(str(python), "-c", code, cwd=python.parent).strip())


def test_the_wheel_installs_the_library_with_its_assets(installed: Path) -> None:
    packages = site_packages(installed)
    assert (packages / "scheduling" / "scheduler.py").is_file()
    assert (packages / "scheduling" / "flask" / "templates" / "base.html").is_file()
    assert (packages / "scheduling" / "flask" / "static" / "dashboard.css").is_file()
    assert (packages / "scheduling" / "py.typed").is_file()


def test_no_top_level_project_package_is_installed(installed: Path, tmp_path: Path) -> None:
    assert not (site_packages(installed) / "project").exists()
    team = tmp_path / "team"
    (team / "project").mkdir(parents=True)
    (team / "project" / "__init__.py").write_text("OWNER = 'the team'\n")
    owner = run(str(installed), "-c", "import project; print(project.OWNER)", cwd=team)
    assert owner.strip() == "the team"


def test_no_flask_command_entry_points_come_with_it(installed: Path) -> None:
    code = (
        "import importlib.metadata as m; "
        "print(sorted(e.name for e in m.entry_points(group='flask.commands')))"
    )
    assert run(str(installed), "-c", code, cwd=installed.parent).strip() == "[]"
    dist_info = next(site_packages(installed).glob("periodic-*.dist-info"))
    entry_points = dist_info / "entry_points.txt"
    assert not entry_points.exists() or "flask.commands" not in entry_points.read_text()
