"""The README's command-line examples, run as written: each ```console block's ``$`` commands
must print exactly the lines that follow them. Files the examples use are the README's ```toml
blocks whose first line is ``# <file name>``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [body for lang, body in BLOCK.findall(text) if lang == language]


def examples() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for body in blocks("console"):
        for line in body.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif found:
                found[-1][1].append(line)
    return found


def test_every_console_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    for body in blocks("toml"):
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and first.endswith(".toml"):
            (tmp_path / first[2:].strip()).write_text(rest, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERIODIC_")}
    env["PYTHONPATH"] = str(ROOT)  # the reference service runs from the checkout
    env["PERIODIC_SETTINGS"] = str(ROOT / "settings.toml")
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    ran = examples()
    assert ran, "README.md has no ```console examples"
    for command, expected in ran:
        result = subprocess.run(
            shlex.split(command),
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        printed = (result.stdout + result.stderr).splitlines()
        assert printed == expected, command
