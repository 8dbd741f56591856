"""`Store`: the one object the scheduler, workers, API and CLI use to reach the database."""

from __future__ import annotations

from scheduling.store.backfill import Backfills
from scheduling.store.claims import SlotClaims
from scheduling.store.database import Database
from scheduling.store.entries import EntryOperations
from scheduling.store.faults import FaultOperations, SessionOperations
from scheduling.store.history import EntryHistory
from scheduling.store.index import EntryIndex
from scheduling.store.lease import LeaseOperations
from scheduling.store.outages import Outages
from scheduling.store.renewal import RenewalConnection
from scheduling.store.runs import RunLedger
from scheduling.store.schema import migrate
from scheduling.store.snapshots import EntrySnapshots
from scheduling.store.sync import ConfigSync
from scheduling.store.tallies import LedgerTallies
from scheduling.store.terms import LeaseTerms
from scheduling.store.timelines import RunTimelines


class Store(
    ConfigSync,
    EntryOperations,
    EntrySnapshots,
    EntryHistory,
    EntryIndex,
    Backfills,
    SlotClaims,
    RunLedger,
    LeaseOperations,
    LedgerTallies,
    LeaseTerms,
    Outages,
    RunTimelines,
    FaultOperations,
    SessionOperations,
):
    """Entries, the run ledger and the lease over one SQLAlchemy engine (thread-safe).

    Open it with `Store.open(url)`: ``sqlite:///var/periodic.db`` (the default; WAL, created
    with its directory) or ``postgresql+psycopg://...`` (``postgresql://`` works too).
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._renewals = RenewalConnection(database)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and create or migrate the schema; safe while other processes do the same."""
        database = Database(url)
        try:
            with database.write() as conn:
                migrate(conn)
        except BaseException:
            database.dispose()
            raise
        return cls(database)

    @property
    def dialect(self) -> str:
        """The backend: `sqlite` or `postgresql`."""
        return self._db.dialect

    @property
    def url(self) -> str:
        """The database URL with any password masked: safe to log."""
        return self._db.safe_url

    def close(self) -> None:
        self._renewals.close()
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
