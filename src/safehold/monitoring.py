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
import os
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
#: Changes waiting for the index that a readiness answer reads at most (the oldest are the ones that matter).
LAG_WINDOW = 10_000
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
        # Which of several API processes (serve --workers) answered this scrape: their counters differ.
        process = GaugeMetricFamily("safehold_api_process", "The API process answering this scrape.", labels=["pid"])
        process.add_metric([str(os.getpid())], 1)
        yield process
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


def _age(now: dt.datetime, at: dt.datetime | None) -> float:
    """Seconds since ``at`` (a naive time from the database is UTC, as every time stored is)."""
    if at is None:
        return 0.0
    if isinstance(at, str):  # SQLite hands an aggregate's time back as text
        at = dt.datetime.fromisoformat(at)
    return max(0.0, (now - (at if at.tzinfo else at.replace(tzinfo=dt.UTC))).total_seconds())


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
    address or version: the answer is given without a key), and how fresh each of its matching indexes is (how
    many bank changes wait for it, and for how long the oldest has waited). Failures are logged with their
    detail."""

    def __init__(self, svc: Services):
        self.svc = svc
        self._answer = _Cached(self._check)

    def check(self) -> dict[str, str]:
        return self.answer()[0]

    def answer(self) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
        """The checks, and each index's freshness by signal type (empty when it could not be read)."""
        return self._answer.get()

    def _check(self) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
        checks, freshness = {"database": self._database()}, {}
        checks["migrations"] = self._migrations() if checks["database"] == "ok" else "unknown"
        checks["index"] = "unknown"
        if checks["database"] == "ok":
            checks["index"], freshness = self._index()
        if self.svc.settings.tasks == "celery":
            checks["redis"] = self._redis()
        return checks, freshness

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

    def _index(self) -> tuple[str, dict[str, dict[str, float]]]:
        """``stale`` when a bank change has waited more than ``SAFEHOLD_READY_MAX_INDEX_LAG_SECONDS`` for an index
        of this process (the upkeep applies changes twice a second, so a change waiting that long means the sync
        is stuck or the database unreadable), with each index's freshness: ``changes_behind`` (the changes to it in
        the store not applied here, counted among the oldest :data:`LAG_WINDOW`) and ``lag_seconds`` (how long the
        oldest has waited). A change to the banks' settings (``banks``) counts against every index."""
        if not self.svc.index_loaded:
            return "loading", {}
        index = self.svc.index
        applied = index.last_seq
        waiting = (
            select(IndexChange.signal_type, IndexChange.at)
            .where(IndexChange.seq > applied)
            .order_by(IndexChange.seq)
            .limit(LAG_WINDOW)
            .subquery()
        )
        with self.svc.db.session() as s:
            rows = s.execute(
                select(waiting.c.signal_type, func.count(), func.min(waiting.c.at)).group_by(waiting.c.signal_type)
            ).all()
        now = dt.datetime.now(dt.UTC)
        behind = {signal_type: (count, _age(now, oldest)) for signal_type, count, oldest in rows}
        every = behind.pop(None, (0, 0.0))  # bank settings changes: every index waits for them
        freshness = {}
        for name in sorted({*index.indexes, *behind}):
            count, lag = behind.get(name, (0, 0.0))
            freshness[name] = {"changes_behind": count + every[0], "lag_seconds": round(max(lag, every[1]), 3)}
        worst = max((f["lag_seconds"] for f in freshness.values()), default=every[1])
        return ("stale" if worst > self.svc.settings.ready_max_index_lag_seconds else "ok"), freshness

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
