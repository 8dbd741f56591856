"""The due heap: earliest first, replaced times never fire, memory stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduling.beat.dueheap import DueHeap

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pops_due_entries_earliest_first() -> None:
    heap = DueHeap()
    heap.put("c", at(3))
    heap.put("a", at(1))
    heap.put("b", at(2))
    assert heap.next_due() == at(1)
    assert heap.pop_due(at(2)) == ["a", "b"]
    assert heap.next_due() == at(3)
    assert len(heap) == 1


def test_a_replaced_time_is_the_only_one_that_counts() -> None:
    heap = DueHeap()
    heap.put("a", at(1))
    heap.put("a", at(10))
    assert heap.next_due() == at(10)
    assert heap.pop_due(at(5)) == []
    assert heap.pop_due(at(10)) == ["a"]
    assert heap.pop_due(at(100)) == []


def test_none_and_remove_unschedule() -> None:
    heap = DueHeap()
    heap.put("a", at(1))
    heap.put("b", at(2))
    heap.put("a", None)
    heap.remove("b")
    assert heap.next_due() is None
    assert "a" not in heap
    assert heap.pop_due(at(100)) == []


def test_limit_leaves_the_rest_for_later() -> None:
    heap = DueHeap()
    heap.load([(f"e{i}", at(i)) for i in range(10)])
    assert heap.pop_due(at(100), limit=4) == ["e0", "e1", "e2", "e3"]
    assert len(heap) == 6


def test_stale_items_are_compacted() -> None:
    heap = DueHeap()
    for round_ in range(5000):
        heap.put("only", at(round_))
    assert len(heap._heap) <= 2048
    assert heap.pop_due(at(10_000)) == ["only"]
