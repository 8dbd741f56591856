"""HTTP request metrics of Periodic's own views (API, dashboard, health), per web process.

Only requests that Periodic's blueprints answer are counted, so a team's app that mounts
`Periodic` keeps its own request metrics to itself. The route label is the URL rule
(``/api/v1/schedules/<name>``), never the path, so entry names cannot grow the series count.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["PERIODIC_BLUEPRINTS", "instrument_requests"]

PERIODIC_BLUEPRINTS = frozenset({"periodic", "periodic_api", "periodic_health"})
_STARTED = "periodic_request_started"


def instrument_requests(app: Flask, registry: CollectorRegistry) -> None:
    requests = Counter(
        "periodic_http_requests",
        "HTTP requests answered by Periodic's views.",
        ["method", "route", "status"],
        registry=registry,
    )
    durations = Histogram(
        "periodic_http_request_duration_seconds",
        "Time to answer an HTTP request to Periodic's views.",
        ["method", "route"],
        registry=registry,
    )

    def ours() -> bool:
        blueprint = request.blueprint
        return blueprint is not None and blueprint.split(".")[0] in PERIODIC_BLUEPRINTS

    @app.before_request
    def start_clock() -> None:
        if ours():
            setattr(g, _STARTED, time.perf_counter())

    @app.after_request
    def count_request(response: Response) -> Response:
        started = g.pop(_STARTED, None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            requests.labels(request.method, route, str(response.status_code)).inc()
            durations.labels(request.method, route).observe(time.perf_counter() - started)
        return response
