"""Request ids and request metrics, outermost of the middleware (plain ASGI: nothing buffered, nothing copied).

For every HTTP request:

- **Request id** — the caller's ``X-Request-ID`` when it is well formed (:data:`safehold.logs.REQUEST_ID`), else a
  new one; set in :data:`safehold.logs.request_id` while the request is served (every log record of the request
  carries it) and echoed in the answer's ``X-Request-ID``.
- **Metrics** — in flight while served; then counted and timed (:mod:`safehold.metrics`) under the route's
  *template* (``/v1/banks/{name}``, never the path itself, so no id or name ever becomes a label), the method and
  the status class. A request answered by :class:`~safehold.api.hotpath.SearchHotPath` is counted under its
  route's template too (:func:`~safehold.api.hotpath.template`); one answered before any route matched (a 404,
  or a refusal of :class:`~safehold.api.limits.RequestLimits` such as a 429) under ``other``.

Outermost, so refusals of the request limits are counted and timed too, and their log records have the id.
The cost per request is a header scan, two dict lookups, a lock-free gauge and a histogram observation: a few
microseconds (docs/deployment.md, "Monitoring").
"""

from __future__ import annotations

import time

from safehold import logs
from safehold.api.hotpath import template
from safehold.metrics import IN_FLIGHT, LATENCY, REQUESTS

HEADER = b"x-request-id"
STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}
#: Methods that become a label as they are; any other (a client may send any token) is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Telemetry:
    """ASGI middleware (added last with ``app.add_middleware``, so it is outermost)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER), None)
        rid = logs.accept_request_id(given.decode("latin-1") if given is not None else None)
        token = logs.request_id.set(rid)
        echoed = (HEADER, rid.encode("latin-1"))
        status = 500  # the app raised before answering: the server answers 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        IN_FLIGHT.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            IN_FLIGHT.dec()
            _record(_template(scope), scope["method"], status, elapsed)
            logs.request_id.reset(token)


#: (route, method) → its latency series and its counters by status class: the labelled series looked up once
#: (``labels()`` validates and locks; a dict lookup is a fraction of that). Bounded: routes × methods × classes.
_SERIES: dict[tuple[str, str], tuple[object, dict[str, object]]] = {}


def _record(route: str, method: str, status: int, elapsed: float) -> None:
    if method not in METHODS:
        method = "other"
    series = _SERIES.get((route, method))
    if series is None:
        series = _SERIES.setdefault((route, method), (LATENCY.labels(route, method), {}))
    timed, counted = series
    timed.observe(elapsed)
    status_class = STATUS_CLASSES.get(status // 100, "other")
    counter = counted.get(status_class)
    if counter is None:
        counter = counted.setdefault(status_class, REQUESTS.labels(route, method, status_class))
    counter.inc()


def _template(scope) -> str:
    """The route template the router matched (it records the route in the request's scope), else the hot path's
    own path, else ``other``."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None) or "other"
    path = scope.get("path", "")
    return template(path) or "other"
