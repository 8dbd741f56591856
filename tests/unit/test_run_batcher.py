"""`Batcher`: requests that arrive together share one `execute`; each gets its own outcome.

Callers are threads (as server threads are): the first runs the batch itself, the ones that
arrive meanwhile form the next batch, led by the first of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from scheduling.celery.app import create_celery
from scheduling.config.settings import Settings
from scheduling.errors import StoreError
from scheduling.flask.asyncio_bridge import sync_view
from scheduling.flask.services import Services
from scheduling.operations.batcher import Batcher, BatcherClosed
from tests.support.polling import wait_for

WAIT = 30.0
"""Seconds to wait for a condition: generous, since a shared CI box may stall a thread."""


class Recorder:
    """An `execute` that records its batches; `hold` parks the next batch until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def hold(self) -> None:
        self.entered.clear()
        self.release.clear()

    def __call__(self, requests: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(requests))
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the batch"
        return [
            request * 10 if request >= 0 else ValueError(f"bad {request}") for request in requests
        ]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def batcher(recorder: Recorder) -> Iterator[Batcher[int, int]]:
    made: Batcher[int, int] = Batcher(recorder)
    yield made
    recorder.release.set()
    made.close()


@pytest.fixture
def callers() -> Iterator[ThreadPoolExecutor]:
    """Threads to call `Batcher.run` from, as a server's threads do."""
    with ThreadPoolExecutor(16, thread_name_prefix="caller") as pool:
        yield pool


def results(futures: Sequence[Future[int]]) -> list[int]:
    return [future.result(timeout=WAIT) for future in futures]


def waiting(batcher: Batcher[int, int], count: int) -> None:
    """Until `count` callers wait for the next batch (they are parked behind a held one)."""
    wait_for(lambda: batcher.waiting == count, timeout=WAIT)


def test_requests_that_queue_while_a_batch_runs_form_the_next_batch(
    batcher: Batcher[int, int], recorder: Recorder, callers: ThreadPoolExecutor
) -> None:
    recorder.hold()
    first = callers.submit(batcher.run, 1)
    assert recorder.entered.wait(WAIT)

    rest = [callers.submit(batcher.run, request) for request in range(2, 7)]
    waiting(batcher, 5)
    recorder.release.set()

    assert results([first, *rest]) == [10, 20, 30, 40, 50, 60]
    assert recorder.batches[0] == [1]
    assert sorted(recorder.batches[1]) == [2, 3, 4, 5, 6]
    assert len(recorder.batches) == 2


def test_the_batch_runs_on_a_callers_thread_and_the_next_on_a_waiting_callers(
    callers: ThreadPoolExecutor,
) -> None:
    threads: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def execute(requests: Sequence[int]) -> list[int | Exception]:
        threads.append(threading.current_thread().name)
        entered.set()
        assert release.wait(WAIT)
        return list(requests)

    batcher: Batcher[int, int] = Batcher(execute, name="leaderless")
    try:
        names: dict[int, str] = {}

        def call(request: int) -> int:
            names[request] = threading.current_thread().name
            return batcher.run(request)

        first = callers.submit(call, 1)
        assert entered.wait(WAIT)
        second = callers.submit(call, 2)
        waiting(batcher, 1)
        release.set()
        assert results([first, second]) == [1, 2]
        assert threads == [names[1], names[2]]
        assert not any("leaderless" in thread.name for thread in threading.enumerate())
    finally:
        release.set()
        batcher.close()


def test_each_request_gets_its_own_outcome(
    batcher: Batcher[int, int], recorder: Recorder, callers: ThreadPoolExecutor
) -> None:
    recorder.hold()
    blocker = callers.submit(batcher.run, 0)
    assert recorder.entered.wait(WAIT)
    good = callers.submit(batcher.run, 1)
    waiting(batcher, 1)
    bad = callers.submit(batcher.run, -1)
    waiting(batcher, 2)
    other = callers.submit(batcher.run, 2)
    waiting(batcher, 3)
    recorder.release.set()

    assert results([blocker, good, other]) == [0, 10, 20]
    with pytest.raises(ValueError, match="bad -1"):
        bad.result(timeout=WAIT)
    assert recorder.batches[-1] == [1, -1, 2]


def test_a_failing_batch_fails_every_request_in_it_with_the_same_error(
    callers: ThreadPoolExecutor,
) -> None:
    calls: list[list[int]] = []

    def execute(requests: Sequence[int]) -> list[int | Exception]:
        calls.append(list(requests))
        if len(calls) == 2:
            raise StoreError("store down")
        if len(calls) == 1:
            entered.set()
            assert release.wait(WAIT)
        return list(requests)

    entered, release = threading.Event(), threading.Event()
    batcher: Batcher[int, int] = Batcher(execute)
    try:
        blocker = callers.submit(batcher.run, 0)
        assert entered.wait(WAIT)
        doomed = [callers.submit(batcher.run, request) for request in (1, 2, 3)]
        waiting(batcher, 3)
        release.set()
        assert blocker.result(timeout=WAIT) == 0
        errors = {id(future.exception(timeout=WAIT)) for future in doomed}
        assert len(errors) == 1
        with pytest.raises(StoreError, match="store down"):
            doomed[0].result()
        assert batcher.run(4) == 4  # the next batch is unaffected
    finally:
        release.set()
        batcher.close()


def test_an_outcome_count_that_does_not_match_fails_the_batch() -> None:
    batcher: Batcher[int, int] = Batcher(lambda requests: [])
    try:
        with pytest.raises(RuntimeError, match="0 outcomes for a batch of 1"):
            batcher.run(1)
    finally:
        batcher.close()


def test_an_interrupted_batch_fails_its_followers_and_hands_on_the_leadership(
    callers: ThreadPoolExecutor,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def execute(requests: Sequence[int]) -> list[int | Exception]:
        if requests == [1]:
            entered.set()
            assert release.wait(WAIT)
        if 0 in requests:
            raise KeyboardInterrupt
        return list(requests)

    batcher: Batcher[int, int] = Batcher(execute, max_batch=2)
    try:
        blocker = callers.submit(batcher.run, 1)
        assert entered.wait(WAIT)
        leader = callers.submit(batcher.run, 5)  # leads the next batch, [5, 0]
        waiting(batcher, 1)
        follower = callers.submit(batcher.run, 0)
        waiting(batcher, 2)
        last = callers.submit(batcher.run, 6)  # the batch after it
        waiting(batcher, 3)
        release.set()

        assert blocker.result(timeout=WAIT) == 1
        with pytest.raises(KeyboardInterrupt):
            leader.result(timeout=WAIT)
        with pytest.raises(RuntimeError, match="interrupted"):
            follower.result(timeout=WAIT)
        assert last.result(timeout=WAIT) == 6
    finally:
        release.set()
        batcher.close()


def test_max_batch_splits_a_burst(recorder: Recorder, callers: ThreadPoolExecutor) -> None:
    batcher: Batcher[int, int] = Batcher(recorder, max_batch=3)
    try:
        recorder.hold()
        first = callers.submit(batcher.run, 0)
        assert recorder.entered.wait(WAIT)
        futures = []
        for request in range(1, 7):
            futures.append(callers.submit(batcher.run, request))
            waiting(batcher, request)
        recorder.release.set()
        assert results([first, *futures]) == [0, 10, 20, 30, 40, 50, 60]
        assert recorder.batches == [[0], [1, 2, 3], [4, 5, 6]]
    finally:
        recorder.release.set()
        batcher.close()


def test_a_lone_request_runs_at_once_on_its_own_thread(recorder: Recorder) -> None:
    batcher: Batcher[int, int] = Batcher(recorder)
    try:
        assert batcher.run(7) == 70
        assert recorder.batches == [[7]]
    finally:
        batcher.close()


def test_close_finishes_what_was_asked_for_and_refuses_more(
    recorder: Recorder, callers: ThreadPoolExecutor
) -> None:
    batcher: Batcher[int, int] = Batcher(recorder)
    recorder.hold()
    first = callers.submit(batcher.run, 1)
    assert recorder.entered.wait(WAIT)
    queued = callers.submit(batcher.run, 2)
    waiting(batcher, 1)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    wait_for(lambda: batcher.closed, timeout=WAIT)
    assert closer.is_alive()  # the batches asked for are not done yet
    recorder.release.set()
    closer.join(WAIT)

    assert not closer.is_alive()
    assert results([first, queued]) == [10, 20]
    with pytest.raises(BatcherClosed):
        batcher.run(3)


def test_async_views_can_call_it_from_their_threads_loop(batcher: Batcher[int, int]) -> None:
    async def view(request: int) -> int:
        return batcher.run(request)

    assert sync_view(view)(4) == 40


def test_a_forked_process_gets_its_own_run_batcher(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(queues={"default": {"priority": 5, "default": True}})
    services = Services(settings, create_celery(settings))
    parent = services.run_batcher
    assert services.run_batcher is parent

    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a forked gunicorn worker
    child = services.run_batcher

    assert child is not parent
    assert services.run_batcher is child
    monkeypatch.undo()
    services.close()


def test_requests_of_many_threads_all_complete(recorder: Recorder) -> None:
    batcher: Batcher[int, int] = Batcher(recorder)
    try:
        outcomes: list[int] = []
        lock = threading.Lock()

        def run_some(offset: int) -> None:
            for request in range(offset, offset + 50):
                outcome = batcher.run(request)
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=run_some, args=(i * 50,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(outcomes) == [10 * n for n in range(400)]
        assert sorted(n for batch in recorder.batches for n in batch) == list(range(400))
    finally:
        batcher.close()
