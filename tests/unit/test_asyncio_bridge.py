"""`AsyncBlueprint`: async views on one persistent loop per thread, in a plain Flask app;
blocking calls run off it."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, request

from scheduling.flask.asyncio_bridge import AsyncBlueprint, run_blocking


def make_app() -> Flask:
    app = Flask("bridge-test")
    views = AsyncBlueprint("views", __name__)

    @views.get("/loop")
    async def loop_id() -> dict[str, object]:
        await asyncio.sleep(0)
        return {"loop": id(asyncio.get_running_loop()), "path": request.path}

    @views.get("/gather")
    async def gather() -> dict[str, object]:
        started = time.monotonic()
        threads = await asyncio.gather(*(run_blocking(_sleep_and_name, 0.2) for _ in range(4)))
        return {"elapsed": time.monotonic() - started, "threads": threads,
                "view_thread": threading.current_thread().name}  # fmt: skip

    app.register_blueprint(views)
    assert not asyncio.iscoroutinefunction(app.view_functions["views.loop_id"])
    return app


def _sleep_and_name(seconds: float) -> str:
    time.sleep(seconds)
    return threading.current_thread().name


def test_the_loop_persists_across_requests_of_one_thread() -> None:
    client = make_app().test_client()
    first = client.get("/loop").get_json()
    second = client.get("/loop").get_json()
    assert first["loop"] == second["loop"]
    assert first["path"] == "/loop"


def test_each_thread_has_its_own_loop() -> None:
    app = make_app()

    def loop_of_new_thread(_: int) -> int:
        loop: int = app.test_client().get("/loop").get_json()["loop"]
        return loop

    here = loop_of_new_thread(0)
    with ThreadPoolExecutor(2) as pool:
        there = set(pool.map(loop_of_new_thread, range(2)))
    assert here not in there


def test_blocking_calls_run_concurrently_off_the_loop_thread() -> None:
    body = make_app().test_client().get("/gather").get_json()
    assert body["elapsed"] < 0.6  # four 0.2 s calls, not 0.8 s in a row
    assert body["view_thread"] not in body["threads"]


def test_a_view_called_inside_a_running_loop_falls_back_to_flask_default() -> None:
    app = make_app()

    async def call() -> int:
        loop: int = app.test_client().get("/loop").get_json()["loop"]
        return loop

    loop_in_view = asyncio.run(call())
    assert isinstance(loop_in_view, int)
