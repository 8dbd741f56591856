"""Slot identity: the stable name of one scheduled run, its Celery task id, and its jitter.

A slot is (entry, scheduled_for). Everything derived from it is a pure function of those two
values, so every beat replica, and the same beat after a restart, agrees on the task id (the
exactly-once claim and the republish of an unconfirmed message rely on it) and on the jitter.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from scheduling.timing.timetables import as_utc

__all__ = ["PERIODIC_NAMESPACE", "jitter_offset", "slot_key", "slot_task_id"]

#: Namespace of the uuid5 task ids. Changing it would change every task id: never do.
PERIODIC_NAMESPACE = uuid.UUID("6f1c2a8e-4d3b-5e7a-9c10-2b8d4e6f7a01")

_MICROSECOND = timedelta(microseconds=1)
_JITTER_PERSON = b"periodic-jitter"  # keeps jitter hashes apart from any other use of the key


def slot_key(entry: str, scheduled_for: datetime) -> str:
    """ "entry@2026-11-21T08:00:00Z": UTC, whole seconds unless the slot has microseconds.

    The instant is rendered in UTC so the key does not depend on the zone it was computed
    in. Entry names may contain "@"; the timestamp follows the last one.
    """
    instant = as_utc(scheduled_for, "scheduled_for")
    stamp = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if instant.microsecond:
        stamp += f".{instant.microsecond:06d}"
    return f"{entry}@{stamp}Z"


def slot_task_id(entry: str, scheduled_for: datetime) -> str:
    """The Celery task id of the slot: uuid5 of its key, identical on every replica."""
    return str(uuid.uuid5(PERIODIC_NAMESPACE, slot_key(entry, scheduled_for)))


def jitter_offset(entry: str, scheduled_for: datetime, jitter: timedelta) -> timedelta:
    """A delay in [0, jitter) for the slot, to the microsecond, from a hash of its key.

    Deterministic rather than random so that a replica taking over, or a restart, dispatches
    the slot at the same moment the previous leader would have; different slots (and
    different entries sharing a slot time) still spread out.
    """
    if jitter < timedelta(0):
        raise ValueError(f"jitter must not be negative, got {jitter}")
    span = jitter // _MICROSECOND
    if span == 0:
        return timedelta(0)
    digest = hashlib.blake2b(
        slot_key(entry, scheduled_for).encode(), digest_size=8, person=_JITTER_PERSON
    ).digest()
    return timedelta(microseconds=int.from_bytes(digest, "big") % span)
