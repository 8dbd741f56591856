"""The web tier's server model, one file for ``nox -s serve``, compose.yaml and ``nox -s bench``.

``gunicorn 'project.app:create_app()' -c python:project.gunicorn_config``: threaded workers
(gthread), one process per core, eight threads each. Why not gunicorn's default `sync` worker:
it serves one request at a time per process, so the run-now group commit
(`scheduling.operations.batcher`) never finds two requests to batch, and every request of the
process queues behind one store commit and one broker confirm. With threads, requests that
arrive together share one claim, one pipelined confirmed publish and one mark; the async views
run on one persistent event loop per thread (`scheduling.flask.asyncio_bridge`). Processes per
core keep the GIL from capping a multi-core host.

Why eight threads: a run-now batch holds at most as many requests as the process has threads in
flight, and its fixed cost (three store transactions and a confirm round trip) is what a request
mostly pays. Measured on 2 cores with wrk at 16 connections (8 per worker): 8 threads answered
run-now 1.5-1.9x as fast as 4 (batches of about 3 grew to about 5), with GET at par; 16 threads
were no faster at run-now and spent 10-20% more CPU per GET (more threads contending for the
GIL). Override any value without editing this file through ``GUNICORN_CMD_ARGS`` (e.g.
``--workers 8``).
"""

from __future__ import annotations

import os

worker_class = "gthread"
workers = max(2, os.cpu_count() or 1)
threads = 8
