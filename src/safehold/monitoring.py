"""What a scrape or a readiness probe reads from the state: queue depths, the index's size and freshness, exchange
lag, and whether the database, the schema, the index and (with Celery) Redis are ready.

Both answers are cached for a few seconds, so scrapes and probes, however often they come and however many
Prometheus servers or load balancers send them, cost the database a handful of small counting queries every few
seconds at most. The counted metrics (requests, task failures) are in :mod:`safehold.metrics`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from safehold.store import migrate
from safehold.store.models import ExchangeRow, ImportJob, IndexChange, Report, ScreeningJob, WebhookDelivery

if TYPE_CHECKING:
    from safehold.services import Services

log = logging.getLogger(__name__)

#: Seconds a scrape's state gauges and a readiness answer are reused.
CACHE_SECONDS = 5.0
#: Seconds the index may go without catching up with the database (while changes wait) before the server is not
#: ready: the upkeep syncs it twice a second, so a minute behind means it is stuck.
INDEX_MAX_LAG = 60.0
#: Seconds Redis has to answer a readiness ping.
REDIS_TIMEOUT = 1.0

#: (metric, help, model, status column, the statuses counted): every queue whose depth is a gauge.
QUEUES = (
    ("safehold_webhook_deliveries", "Webhook deliveries by status.", WebhookDelivery, ("pending", "dead")),
    ("safehold_screening_jobs", "Screening jobs waiting to be sent.", ScreeningJob, ("queued",)),
    ("safehold_import_jobs", "Bank imports not finished, by phase.", ImportJob, ("adding", "withdrawing")),
    ("safehold_reports_filing", "Reports to authorities being filed.", Report, ("submitted",)),
)


class _Cached:
    """A value recomputed at most every :data:`CACHE_SECONDS` (one computation at a time)."""

    def __init__(self, compute: Callable[[], object]):
        self._compute, self._lock = compute, threading.Lock()
        self._at, self._value = float("-inf"), None

    def get(self):
        with self._lock:
            if time.monotonic() - self._at >= CACHE_SECONDS:
                self._value, self._at = self._compute(), time.monotonic()
            return self._value


class StateCollector(Collector):
    """The state gauges of one server (its services), for ``/metrics``."""

    def __init__(self, svc: Services):
        self.svc = svc
        self._families = _Cached(lambda: list(self._collect()))

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self._families.get()

    def _collect(self) -> Iterable[GaugeMetricFamily]:
        now = dt.datetime.now(dt.UTC)
        with self.svc.db.session() as s:
            for name, help_text, model, statuses in QUEUES:
                gauge = GaugeMetricFamily(name, help_text, labels=["status"])
                counts = dict(
                    s.execute(
                        select(model.status, func.count()).where(model.status.in_(statuses)).group_by(model.status)
                    ).all()
                )
                for status in statuses:
                    gauge.add_metric([status], counts.get(status, 0))
                yield gauge
            head = s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))) or 0
            exchanges = s.execute(
                select(ExchangeRow.name, ExchangeRow.last_success_at, ExchangeRow.created_at, ExchangeRow.failures)
                .where(ExchangeRow.enabled.is_(True))
                .order_by(ExchangeRow.name)
            ).all()
        yield from self._index(head, now)
        lag = GaugeMetricFamily(
            "safehold_exchange_last_success_age_seconds",
            "Seconds since an enabled exchange's last successful fetch (since it was added, if none yet).",
            labels=["exchange"],
        )
        failures = GaugeMetricFamily(
            "safehold_exchange_consecutive_failures", "Fetch rounds failed in a row, per exchange.", labels=["exchange"]
        )
        for name, success, created, failed in exchanges:
            lag.add_metric([name], max(0.0, (now - (success or created)).total_seconds()))
            failures.add_metric([name], failed)
        yield lag
        yield failures

    def _index(self, head: int, now: dt.datetime) -> Iterable[GaugeMetricFamily]:
        index = self.svc.index
        stats = index.stats()
        entries = GaugeMetricFamily(
            "safehold_index_entries",
            "Entries in this process's matching index, per signal type.",
            labels=["signal_type"],
        )
        for signal_type, size in stats["indexes"].items():
            entries.add_metric([signal_type], size)
        yield entries
        yield GaugeMetricFamily(
            "safehold_index_memory_bytes", "Memory held by this process's matching index.", value=stats["memory_bytes"]
        )
        yield GaugeMetricFamily(
            "safehold_index_changes_behind",
            "Bank changes in the database this process's index has not applied yet.",
            value=max(0, head - stats["last_seq"]),
        )
        if index.last_at:
            age = (now - dt.datetime.fromisoformat(index.last_at)).total_seconds()
            yield GaugeMetricFamily(
                "safehold_index_last_change_age_seconds",
                "Seconds since the newest bank change this process's index has applied was made.",
                value=max(0.0, age),
            )
        if index.synced_at is not None:
            yield GaugeMetricFamily(
                "safehold_index_synced_age_seconds",
                "Seconds since this process's index last caught up with the database.",
                value=time.monotonic() - index.synced_at,
            )


def state_registry(svc: Services) -> CollectorRegistry:
    """A registry holding only ``svc``'s state gauges (exposed beside :mod:`safehold.metrics`' counters)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(svc))
    return registry


@functools.cache
def _head_revision() -> str:
    return migrate.head_revision()  # the installed migrations do not change while the process runs


class Readiness:
    """Whether this server can serve now: each check is ``ok`` or a short, stable reason (no error text, no
    address or version: the answer is given without a key). Failures are logged with their detail."""

    def __init__(self, svc: Services):
        self.svc = svc
        self._answer = _Cached(self._check)

    def check(self) -> dict[str, str]:
        return self._answer.get()

    def _check(self) -> dict[str, str]:
        checks = {"database": self._database()}
        checks["migrations"] = self._migrations() if checks["database"] == "ok" else "unknown"
        checks["index"] = self._index() if checks["database"] == "ok" else "unknown"
        if self.svc.settings.tasks == "celery":
            checks["redis"] = self._redis()
        return checks

    def _database(self) -> str:
        try:
            with self.svc.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            log.warning("readiness: the database is not reachable", exc_info=True)
            return "unreachable"
        return "ok"

    def _migrations(self) -> str:
        try:
            current = migrate.current_revision(self.svc.db)
        except Exception:
            log.warning("readiness: could not read the schema revision", exc_info=True)
            return "unknown"
        return "ok" if current == _head_revision() else "behind"

    def _index(self) -> str:
        if not self.svc.index_loaded:
            return "loading"
        index = self.svc.index
        with self.svc.db.session() as s:
            head = s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))) or 0
        caught_up = index.last_seq >= head
        if caught_up or (index.synced_at is not None and time.monotonic() - index.synced_at < INDEX_MAX_LAG):
            return "ok"
        return "stale"

    def _redis(self) -> str:
        try:
            import redis  # installed with the celery extra

            url = self.svc.settings.redis_url
            with redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT) as r:
                r.ping()
        except Exception:
            log.warning("readiness: Redis is not reachable", exc_info=True)
            return "unreachable"
        return "ok"
