"""`start_runs`: a batch of run-now requests is one claim, one confirmed publish, one mark.

The store is real (both dialects); the publisher is a stand-in that confirms, refuses or half
confirms, so each failure fans out exactly as the broker would make it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from scheduling.broker.publisher import BatchPublishError, OutgoingRun
from scheduling.config.settings import ScheduleEntry, Settings
from scheduling.errors import EntryNotFound, PublishError, StoreError
from scheduling.operations.entries import BrokerUnavailable, RunNowRequest, start_runs
from scheduling.store import HistoryRow, ManualRun, RunRecord, RunState, Store

pytestmark = pytest.mark.integration

SETTINGS = Settings(queues={"default": {"priority": 5, "default": True}, "low": {"priority": 1}})
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Publisher:
    """Records each batch; `refuse` fails the whole batch, `confirm_only` half-confirms it."""

    def __init__(self, *, refuse: bool = False, confirm_only: Sequence[int] | None = None) -> None:
        self.batches: list[list[OutgoingRun]] = []
        self.refuse = refuse
        self.confirm_only = confirm_only

    def publish(self, runs: Sequence[OutgoingRun]) -> None:
        self.batches.append(list(runs))
        if self.refuse:
            raise PublishError("the broker does not accept connections")
        if self.confirm_only is not None:
            confirmed = frozenset(runs[index].task_id for index in self.confirm_only)
            raise BatchPublishError("2 of 4 messages not accepted", confirmed)


@pytest.fixture
def store(store: Store) -> Store:
    store.create_entry(
        "ping",
        ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1h"),
        next_run_at=None,
    )
    store.create_entry(
        "pong",
        ScheduleEntry(task="scheduling.tasks.heartbeat.heartbeat", every="1h", queue="low"),
        next_run_at=None,
    )
    return store


def runs(outcomes: Sequence[RunRecord | Exception]) -> list[RunRecord]:
    found = [outcome for outcome in outcomes if isinstance(outcome, RunRecord)]
    assert len(found) == len(outcomes), outcomes
    return found


def test_a_batch_is_published_once_and_every_run_is_dispatched(store: Store) -> None:
    publisher = Publisher()
    requests = [("ping", NOW), ("pong", NOW), ("ping", NOW)]

    started = runs(start_runs(store, publisher, SETTINGS, requests, clock=lambda: NOW))

    assert [run.entry for run in started] == ["ping", "pong", "ping"]
    assert len(publisher.batches) == 1
    assert [message.task_id for message in publisher.batches[0]] == [r.task_id for r in started]
    assert [message.queue for message in publisher.batches[0]] == ["default", "low", "default"]
    assert {run.state for run in started} == {RunState.DISPATCHED}
    for run in started:
        stored = store.get_run(run.task_id)
        assert stored is not None
        assert (stored.state, stored.dispatched_at, stored.manual) == (
            RunState.DISPATCHED,
            NOW,
            True,
        )


def test_confirmed_runs_of_named_actors_are_in_their_entries_history(store: Store) -> None:
    publisher = Publisher(confirm_only=[0, 2])
    requests = [
        RunNowRequest("ping", NOW, "token:ci"),
        RunNowRequest("ping", NOW, "token:ci"),
        RunNowRequest("pong", NOW, "cli:ops"),
        ("pong", NOW),
    ]

    outcomes = start_runs(store, publisher, SETTINGS, requests)

    confirmed = [outcome for outcome in outcomes if isinstance(outcome, RunRecord)]
    assert len(confirmed) == 2
    recorded = {
        (record.entry, record.actor, record.details["task_id"])
        for name in ("ping", "pong")
        for record in store.entry_history(name)
        if record.action == "run_now"
    }
    assert recorded == {
        ("ping", "token:ci", confirmed[0].task_id),
        ("pong", "cli:ops", confirmed[1].task_id),
    }


def test_a_refused_publish_fails_every_request_and_revokes_every_row(store: Store) -> None:
    outcomes = start_runs(store, Publisher(refuse=True), SETTINGS, [("ping", NOW)] * 3)

    for outcome in outcomes:
        assert isinstance(outcome, BrokerUnavailable)
        assert isinstance(outcome.__cause__, PublishError)
    assert "nothing was started" in str(outcomes[0])
    ledger = store.runs_for_entry("ping")
    assert len(ledger) == 3
    assert {run.state for run in ledger} == {RunState.REVOKED}


def test_half_confirmed_batch_answers_each_request_by_its_own_message(store: Store) -> None:
    publisher = Publisher(confirm_only=[0, 2])

    outcomes = start_runs(store, publisher, SETTINGS, [("ping", NOW)] * 4)

    assert [type(outcome).__name__ for outcome in outcomes] == [
        "RunRecord",
        "BrokerUnavailable",
        "RunRecord",
        "BrokerUnavailable",
    ]
    states = {run.task_id: run.state for run in store.runs_for_entry("ping")}
    sent = [message.task_id for message in publisher.batches[0]]
    assert [states[task_id] for task_id in sent] == [
        RunState.DISPATCHED,
        RunState.REVOKED,
        RunState.DISPATCHED,
        RunState.REVOKED,
    ]


def test_an_unknown_entry_fails_only_its_own_requests(store: Store) -> None:
    publisher = Publisher()

    outcomes = start_runs(
        store, publisher, SETTINGS, [("ghost", NOW), ("ping", NOW), ("ghost", NOW)]
    )

    assert isinstance(outcomes[0], EntryNotFound)
    assert isinstance(outcomes[2], EntryNotFound)
    assert outcomes[0] is not outcomes[2]
    assert isinstance(outcomes[1], RunRecord)
    assert [message.entry for message in publisher.batches[0]] == ["ping"]


def test_a_claim_that_fails_fails_the_batch_and_publishes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(requests: Sequence[ManualRun], **_: object) -> list[RunRecord]:
        raise StoreError("store unavailable")

    monkeypatch.setattr(store, "claim_manual_runs", unavailable)
    publisher = Publisher()

    with pytest.raises(StoreError, match="store unavailable"):
        start_runs(store, publisher, SETTINGS, [("ping", NOW), ("pong", NOW)])
    assert publisher.batches == []


def test_confirmed_runs_are_accepted_even_when_marking_them_fails(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(task_ids: Sequence[str], at: datetime, history: Sequence[HistoryRow]) -> None:
        raise StoreError("store unavailable")

    monkeypatch.setattr(store, "mark_dispatched", unavailable)

    started = runs(start_runs(store, Publisher(), SETTINGS, [("ping", NOW)] * 2))

    assert {run.state for run in started} == {RunState.PENDING}  # the worker moves them on
