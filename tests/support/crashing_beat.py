"""A beat that dies between claiming slots and publishing them: fault injection for tests.

Used as ``celery beat -S tests.support.crashing_beat:CrashBetweenClaimAndPublish``. The first
time it
is about to publish claimed slots it writes their task ids to ``$PERIODIC_TEST_CRASH_FILE`` and
exits at once (``os._exit``: no cleanup, no lease release), exactly like a process killed after
the store committed the claim and before any message left.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from scheduling.beat.scheduler import DatabaseScheduler
from scheduling.broker.publisher import OutgoingRun, SentBatch

CRASH_FILE_ENV = "PERIODIC_TEST_CRASH_FILE"
CRASH_EXIT_CODE = 70


class CrashBetweenClaimAndPublish(DatabaseScheduler):
    def setup_schedule(self) -> None:
        super().setup_schedule()

        def crash(runs: Sequence[OutgoingRun]) -> SentBatch:
            ids = [run.task_id for run in runs]
            Path(os.environ[CRASH_FILE_ENV]).write_text(json.dumps(ids))
            os._exit(CRASH_EXIT_CODE)

        self.publisher.send = crash  # type: ignore[method-assign]
