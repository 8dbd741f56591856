"""A stand-in for beat's confirmed publisher, for tests whose subject is the tick, not RabbitMQ."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from scheduling.broker.publisher import BatchPublishError, OutgoingRun, SentBatch


class RecordingPublisher:
    """Confirms every message, except those of entries listed in `refuse` (returned) or in
    `too_large` (the broker closes the channel over them, as RabbitMQ does past its
    max_message_size: which message of a batch did it is not known)."""

    def __init__(self) -> None:
        self.sent: list[OutgoingRun] = []
        self.refuse: set[str] = set()
        self.too_large: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, runs: Sequence[OutgoingRun]) -> None:
        large = [r for r in runs if r.entry in self.too_large]
        if large:
            if len(runs) == 1:
                raise BatchPublishError(
                    "channel closed", frozenset(), {runs[0].task_id: "message too large"}
                )
            raise BatchPublishError("channel closed", frozenset(), channel_error=True)
        with self._lock:
            refused = {r.task_id: "unroutable: test" for r in runs if r.entry in self.refuse}
            self.sent.extend(r for r in runs if r.task_id not in refused)
        if refused:
            confirmed = frozenset(r.task_id for r in runs if r.task_id not in refused)
            raise BatchPublishError("refused", confirmed, refused)

    connected = True

    def send(self, runs: Sequence[OutgoingRun]) -> SentBatch:
        return SentBatch(list(runs))

    def wait(self, batch: SentBatch) -> None:
        if batch.runs:
            self.publish(batch.runs)

    def entries_sent(self) -> set[str]:
        with self._lock:
            return {run.entry for run in self.sent}

    def ensure_connected(self) -> None:
        pass

    def close(self) -> None:
        pass
