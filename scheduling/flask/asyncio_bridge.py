"""How async views run: one persistent event loop per server thread, blocking calls off it.

Flask runs an ``async def`` view through ``Flask.async_to_sync``, which by default (asgiref)
starts a fresh event loop in a helper thread for every request: three to four times slower than a
sync view. Periodic's views are registered on an `AsyncBlueprint`, which hands Flask a plain
function instead (`sync_view`): each server thread (gunicorn gthread, the dev server, the test
client) keeps one event loop and runs the view's coroutine on it with ``run_until_complete``.
Because the blueprint does it, this holds in any Flask app the extension is mounted on, whatever
its class. The request is still handled by exactly one thread at a time, so
Flask's context-local request and app objects behave as before (a task copies the context it is
created in), and anything bound to the loop stays valid from one request to the next.

Blocking calls (store, broker) do not run on the loop itself: `run_blocking` hands them to one
bounded, process-wide thread pool, so independent I/O of one request can run concurrently with
``asyncio.gather``. The pool is created lazily and again after a fork (gunicorn workers). One
exception: run-now joins the process's group commit (`scheduling.operations.batcher`) on the
loop's own thread, whose thread may then run the batch itself; the loop serves that one request,
so nothing waits behind it, and the request is spared two thread hand-offs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint

__all__ = ["BLOCKING_POOL_SIZE", "AsyncBlueprint", "run_blocking", "sync_view", "thread_loop"]

P = ParamSpec("P")
T = TypeVar("T")

BLOCKING_POOL_SIZE = 32
"""Threads for blocking calls in one process: enough for every server thread to fan out a little."""


class _LoopHolder:
    """Owns one thread's loop; closes it when the thread ends and its locals are dropped."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        loop = self.loop
        if loop.is_closed() or loop.is_running():
            return
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


_thread_state = threading.local()
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's persistent event loop (created on first use)."""
    holder: _LoopHolder | None = getattr(_thread_state, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _LoopHolder()
        _thread_state.holder = holder
    return holder.loop


def blocking_pool() -> ThreadPoolExecutor:
    """The process-wide pool for blocking calls; a forked child gets its own."""
    global _pool
    pool = _pool
    if pool is not None and pool[0] == os.getpid():
        return pool[1]
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            executor = ThreadPoolExecutor(BLOCKING_POOL_SIZE, thread_name_prefix="periodic-io")
            _pool = (os.getpid(), executor)
        return _pool[1]


async def run_blocking(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking call in the bounded pool (like `asyncio.to_thread`, with a shared bound)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(blocking_pool(), call)


def sync_view(func: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """A plain function that runs the coroutine function ``func`` on this thread's loop."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return thread_loop().run_until_complete(func(*args, **kwargs))
        # Called from code that already runs a loop in this thread (an async test, say): a
        # loop cannot be re-entered, so run this one coroutine on a helper thread's own loop.
        context = contextvars.copy_context()
        with ThreadPoolExecutor(1, thread_name_prefix="periodic-nested") as helper:
            return helper.submit(context.run, asyncio.run, func(*args, **kwargs)).result()

    return run


class AsyncBlueprint(Blueprint):
    """A blueprint whose ``async def`` views run through `sync_view`, in any Flask app."""

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: Any = None,
        provide_automatic_options: bool | None = None,
        **options: Any,
    ) -> None:
        if view_func is not None and inspect.iscoroutinefunction(view_func):
            view_func = sync_view(view_func)
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **options)
