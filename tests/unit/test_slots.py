"""Slot keys, task ids and jitter are pure functions of (entry, scheduled_for)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.timing.slots import PERIODIC_NAMESPACE, jitter_offset, slot_key, slot_task_id

SLOT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_slot_key_is_entry_at_utc_instant() -> None:
    assert slot_key("daily-report", SLOT) == "daily-report@2026-11-21T08:00:00Z"


def test_slot_key_converts_to_utc() -> None:
    berlin = SLOT.astimezone(ZoneInfo("Europe/Berlin"))

    assert slot_key("daily-report", berlin) == "daily-report@2026-11-21T08:00:00Z"


def test_slot_key_keeps_microseconds_when_present() -> None:
    slot = SLOT + timedelta(microseconds=1500)

    assert slot_key("fast", slot) == "fast@2026-11-21T08:00:00.001500Z"


def test_slot_key_refuses_naive_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        slot_key("daily-report", datetime(2026, 11, 21, 8))


def test_task_id_is_a_stable_uuid5() -> None:
    task_id = slot_task_id("daily-report", SLOT)

    assert task_id == str(uuid.uuid5(PERIODIC_NAMESPACE, "daily-report@2026-11-21T08:00:00Z"))
    assert uuid.UUID(task_id).version == 5
    # Pinned: a changed namespace or key format would re-run every claimed slot.
    assert task_id == "98800f83-ed6c-58d0-b52d-b41e02ac10c9"


def test_task_id_is_the_same_from_any_zone_and_differs_per_slot() -> None:
    elsewhere = SLOT.astimezone(ZoneInfo("Asia/Kolkata"))

    assert slot_task_id("daily-report", elsewhere) == slot_task_id("daily-report", SLOT)
    assert slot_task_id("daily-report", SLOT + timedelta(days=1)) != slot_task_id(
        "daily-report", SLOT
    )
    assert slot_task_id("weekly-report", SLOT) != slot_task_id("daily-report", SLOT)


def test_jitter_is_zero_without_jitter() -> None:
    assert jitter_offset("daily-report", SLOT, timedelta(0)) == timedelta(0)
    assert jitter_offset("daily-report", SLOT, timedelta(microseconds=1)) == timedelta(0)


def test_jitter_is_deterministic() -> None:
    first = jitter_offset("daily-report", SLOT, timedelta(minutes=5))
    again = jitter_offset(
        "daily-report", SLOT.astimezone(ZoneInfo("America/Santiago")), timedelta(minutes=5)
    )

    assert first == again


def test_jitter_stays_in_bounds_and_spreads() -> None:
    jitter = timedelta(seconds=30)
    offsets = [jitter_offset("ping", SLOT + timedelta(minutes=k), jitter) for k in range(2000)]

    assert all(timedelta(0) <= offset < jitter for offset in offsets)
    assert len(set(offsets)) > 1900
    assert min(offsets) < timedelta(seconds=1)
    assert max(offsets) > timedelta(seconds=29)
    assert any(offset.microseconds % 1000 for offset in offsets)  # microsecond resolution


def test_entries_sharing_a_slot_time_get_different_jitter() -> None:
    jitter = timedelta(minutes=10)

    assert jitter_offset("a", SLOT, jitter) != jitter_offset("b", SLOT, jitter)


def test_negative_jitter_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        jitter_offset("ping", SLOT, timedelta(seconds=-1))
