"""The web tier's server model, one file for ``nox -s serve``, compose.yaml and ``nox -s bench``.

``gunicorn 'project.app:create_app()' -c python:project.gunicorn_config``: threaded workers
(gthread), one process per core, four threads each. Why not gunicorn's default `sync` worker:
it serves one request at a time per process, so the run-now group commit
(`scheduling.operations.batcher`) never finds two requests to batch, and every request of the
process queues behind one store commit and one broker confirm. With threads, requests that
arrive together share one claim, one pipelined confirmed publish and one mark; the async views
run on one persistent event loop per thread (`scheduling.flask.asyncio_bridge`). Processes per
core keep the GIL from capping a multi-core host. Override any value without editing this file
through ``GUNICORN_CMD_ARGS`` (e.g. ``--workers 8``).
"""

from __future__ import annotations

import os

worker_class = "gthread"
workers = max(2, os.cpu_count() or 1)
threads = 4
