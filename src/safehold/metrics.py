"""The process's Prometheus metrics that are counted as things happen: requests and background-task failures.

Metrics read from state (queue depths, index sizes, exchange lag) are not here: they are collected when scraped
(:mod:`safehold.monitoring`). ``prometheus_client``'s multiprocess mode is used when ``PROMETHEUS_MULTIPROC_DIR``
names a directory at start (set it, empty, for several uvicorn workers or for Celery workers on the same host):
each process writes its counters to files there and :func:`exposition` sums them; without it the values live in
this process only.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = [
    "CONTENT_TYPE_LATEST",
    "GROUP_COMMIT_BATCH",
    "GROUP_COMMIT_REFUSED",
    "GROUP_COMMIT_WAITING",
    "IN_FLIGHT",
    "LATENCY",
    "REQUESTS",
    "TASK_FAILURES",
    "exposition",
    "multiprocess",
    "process_stopped",
]

#: Seconds: from a sub-millisecond hash lookup to a slow upload.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "safehold_http_requests",
    "HTTP requests answered, by route template, method and status class (2xx, 4xx, ...).",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "safehold_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=BUCKETS,
)
IN_FLIGHT = Gauge("safehold_http_requests_in_flight", "HTTP requests being answered now.", multiprocess_mode="livesum")
TASK_FAILURES = Counter(
    "safehold_task_failures", "Background task rounds that failed (logged; the next round retries).", ["task"]
)

# Group commit (safehold.store.groupcommit): how many items wait, how many go in one transaction, how many are refused.
GROUP_COMMIT_WAITING = Gauge(
    "safehold_group_commit_waiting",
    "Chat messages and events waiting for their shared transaction (the group-commit queue depth).",
    multiprocess_mode="livesum",
)
GROUP_COMMIT_BATCH = Histogram(
    "safehold_group_commit_batch_size",
    "Items committed per group-commit transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000),
)
GROUP_COMMIT_REFUSED = Counter(
    "safehold_group_commit_refused", "Items refused with 503 intake.busy because the group-commit queue was full."
)
GROUP_COMMIT_SHED = Counter(
    "safehold_group_commit_shed",
    "Items answered 503 intake.busy without their work because they waited over SAFEHOLD_GROUP_COMMIT_MAX_WAIT_MS.",
)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def exposition(*extra: CollectorRegistry) -> bytes:
    """The text exposition of the counted metrics (every process's, in multiprocess mode) and of ``extra``."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return b"".join(_generate(r) for r in (registry, *extra))


def process_stopped() -> None:
    """In multiprocess mode, drop this process's live gauges (its in-flight count) from the sums; its counters stay."""
    if multiprocess():
        mark_process_dead(os.getpid())
