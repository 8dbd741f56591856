"""`Batcher`: requests that arrive together share one `execute`; each gets its own outcome."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, wait

import pytest

from scheduling.celery.app import create_celery
from scheduling.config.settings import Settings
from scheduling.errors import StoreError
from scheduling.flask.services import Services
from scheduling.operations.batcher import Batcher, BatcherClosed

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
    made: Batcher[int, int] = Batcher(recorder, linger=0.0)
    yield made
    recorder.release.set()
    made.close()


def results(futures: Sequence[Future[int]]) -> list[int]:
    return [future.result(timeout=WAIT) for future in futures]


def test_requests_that_queue_while_a_batch_runs_form_the_next_batch(
    batcher: Batcher[int, int], recorder: Recorder
) -> None:
    recorder.hold()
    first = batcher.submit(1)
    assert recorder.entered.wait(WAIT)

    rest = [batcher.submit(request) for request in range(2, 7)]
    recorder.release.set()

    assert results([first, *rest]) == [10, 20, 30, 40, 50, 60]
    assert recorder.batches == [[1], [2, 3, 4, 5, 6]]


def test_each_request_gets_its_own_outcome(batcher: Batcher[int, int], recorder: Recorder) -> None:
    recorder.hold()
    blocker = batcher.submit(0)
    assert recorder.entered.wait(WAIT)
    good, bad, other = batcher.submit(1), batcher.submit(-1), batcher.submit(2)
    recorder.release.set()

    assert results([blocker, good, other]) == [0, 10, 20]
    with pytest.raises(ValueError, match="bad -1"):
        bad.result(timeout=WAIT)
    assert recorder.batches[-1] == [1, -1, 2]


def test_a_failing_batch_fails_every_request_in_it_with_the_same_error() -> None:
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
    batcher: Batcher[int, int] = Batcher(execute, linger=0.0)
    try:
        blocker = batcher.submit(0)
        assert entered.wait(WAIT)
        doomed = [batcher.submit(request) for request in (1, 2, 3)]
        release.set()
        assert blocker.result(timeout=WAIT) == 0
        errors = {id(future.exception(timeout=WAIT)) for future in doomed}
        assert len(errors) == 1
        with pytest.raises(StoreError, match="store down"):
            doomed[0].result()
        assert batcher.submit(4).result(timeout=WAIT) == 4  # the next batch is unaffected
    finally:
        release.set()
        batcher.close()


def test_an_outcome_count_that_does_not_match_fails_the_batch() -> None:
    batcher: Batcher[int, int] = Batcher(lambda requests: [], linger=0.0)
    try:
        with pytest.raises(RuntimeError, match="0 outcomes for a batch of 1"):
            batcher.submit(1).result(timeout=WAIT)
    finally:
        batcher.close()


def test_linger_gathers_a_burst_and_max_batch_ends_the_wait(recorder: Recorder) -> None:
    # A linger far beyond the test's patience: only reaching max_batch can close the batch.
    batcher: Batcher[int, int] = Batcher(recorder, linger=3600.0, max_batch=3)
    try:
        futures = [batcher.submit(request) for request in range(1, 7)]
        assert results(futures) == [10, 20, 30, 40, 50, 60]
        assert recorder.batches == [[1, 2, 3], [4, 5, 6]]
    finally:
        batcher.close()


def test_a_lone_request_is_done_once_the_linger_ran_out(recorder: Recorder) -> None:
    batcher: Batcher[int, int] = Batcher(recorder, linger=0.05)
    try:
        assert batcher.submit(7).result(timeout=WAIT) == 70
        assert recorder.batches == [[7]]
    finally:
        batcher.close()


def test_a_cancelled_request_is_left_out_of_its_batch(
    batcher: Batcher[int, int], recorder: Recorder
) -> None:
    recorder.hold()
    blocker = batcher.submit(0)
    assert recorder.entered.wait(WAIT)
    kept, dropped = batcher.submit(1), batcher.submit(2)
    assert dropped.cancel()
    recorder.release.set()

    assert results([blocker, kept]) == [0, 10]
    assert recorder.batches == [[0], [1]]


def test_close_finishes_what_was_submitted_and_refuses_more(recorder: Recorder) -> None:
    batcher: Batcher[int, int] = Batcher(recorder, linger=0.0)
    recorder.hold()
    first = batcher.submit(1)
    assert recorder.entered.wait(WAIT)
    queued = batcher.submit(2)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    recorder.release.set()
    closer.join(WAIT)

    assert not closer.is_alive()
    assert results([first, queued]) == [10, 20]
    with pytest.raises(BatcherClosed):
        batcher.submit(3)
    assert not any(thread.name == "periodic-batcher" for thread in threading.enumerate())


def test_async_callers_await_the_future_without_a_pool_thread(
    batcher: Batcher[int, int],
) -> None:
    async def burst() -> list[int]:
        return list(
            await asyncio.gather(*(asyncio.wrap_future(batcher.submit(n)) for n in range(1, 9)))
        )

    assert asyncio.run(burst()) == [10 * n for n in range(1, 9)]


def test_the_thread_starts_with_the_first_request_not_before() -> None:
    batcher: Batcher[int, int] = Batcher(lambda requests: list(requests), name="lazy-batcher")
    assert not any(thread.name == "lazy-batcher" for thread in threading.enumerate())
    try:
        assert batcher.submit(5).result(timeout=WAIT) == 5
        assert any(thread.name == "lazy-batcher" for thread in threading.enumerate())
    finally:
        batcher.close()


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
    batcher: Batcher[int, int] = Batcher(recorder, linger=0.001)
    try:
        futures: list[Future[int]] = []
        lock = threading.Lock()

        def submit_some(offset: int) -> None:
            for request in range(offset, offset + 50):
                future = batcher.submit(request)
                with lock:
                    futures.append(future)

        threads = [threading.Thread(target=submit_some, args=(i * 50,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        done, pending = wait(futures, timeout=WAIT)
        assert not pending
        assert sorted(future.result() for future in done) == [10 * n for n in range(400)]
        assert sorted(n for batch in recorder.batches for n in batch) == list(range(400))
    finally:
        batcher.close()
