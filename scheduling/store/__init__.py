"""The schedule store: entries, the run ledger and the beat lease, in SQLite or PostgreSQL.

All SQL of the project lives in this package. Datetimes go in and come out as aware UTC;
transient database faults raise `scheduling.errors.StoreError`, chained to their cause.
"""

from scheduling.store.entries import QueueMatch
from scheduling.store.history import HISTORY_ACTIONS, HistoryAction, HistoryRecord, HistoryRow
from scheduling.store.index import EntryIndexRow
from scheduling.store.notify import ChangeSignal
from scheduling.store.records import (
    FINISHED_STATES,
    LEDGER_ONLY_STATES,
    UNFINISHED_STATES,
    BeatStatus,
    EntryFault,
    EntryRecord,
    LeaseRecord,
    ManualRun,
    RunRecord,
    RunState,
    SlotClaim,
    SyncSummary,
)
from scheduling.store.schema import SCHEMA_VERSION, UTCDateTime
from scheduling.store.snapshots import EntrySnapshot
from scheduling.store.store import Store
from scheduling.store.tallies import Histogram, Tallies

__all__ = [
    "FINISHED_STATES",
    "HISTORY_ACTIONS",
    "LEDGER_ONLY_STATES",
    "SCHEMA_VERSION",
    "UNFINISHED_STATES",
    "BeatStatus",
    "ChangeSignal",
    "EntryFault",
    "EntryIndexRow",
    "EntryRecord",
    "EntrySnapshot",
    "Histogram",
    "HistoryAction",
    "HistoryRecord",
    "HistoryRow",
    "LeaseRecord",
    "ManualRun",
    "QueueMatch",
    "RunRecord",
    "RunState",
    "SlotClaim",
    "Store",
    "SyncSummary",
    "Tallies",
    "UTCDateTime",
]
