"""Which processes belong to the sessions we started (Linux ``/proc``).

Every child Periodic starts (broker node, web, workers, beat) gets a session of its own, so
"stop everything we started, and nothing else" is: signal the members of those sessions.
Shared by the throwaway broker node and the serve supervisor.
"""

from __future__ import annotations

from pathlib import Path


def session_members(session_ids: set[int]) -> set[int]:
    """PIDs of live (non-zombie) processes whose session id is in ``session_ids``."""
    members: set[int] = set()
    if not session_ids:
        return members
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) in session_ids:
            members.add(int(entry.name))
    return members
