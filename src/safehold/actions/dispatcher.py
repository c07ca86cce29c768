"""Sends queued webhook deliveries: at least once, signed, with exponential back-off and a dead-letter state.

A round leases due rows with one ``UPDATE … RETURNING`` (the rows picked once, with ``FOR UPDATE SKIP LOCKED``
on PostgreSQL; under the writer lock on SQLite), so two threads or processes never send the same row at once,
and commits the lease before sending.
If the sender dies mid-request the lease simply lapses (``webhook_timeout`` + ``LEASE_GRACE`` seconds) and the
row is due again: the receiver may see a delivery twice, always with the same idempotency key, never zero times.

Rows are leased ``concurrency`` at a time and sent in parallel, so every leased request finishes (or times out)
well inside its lease. A result is written only if the row still carries this worker's lease.

The dispatcher has no loop of its own: the ``webhooks.deliver`` task (:mod:`safehold.workers`) runs its rounds,
in the server process or on Celery workers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy import Integer, bindparam, or_, select, update

from safehold import __version__
from safehold.actions.signing import sign
from safehold.actions.webhooks import WebhookService
from safehold.backoff import retry_delay
from safehold.config import Settings
from safehold.store.db import Database
from safehold.store.models import Webhook, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

#: Seconds a lease outlives the request timeout: time to write the result after a slow answer.
LEASE_GRACE = 30.0
#: A receiver's error text kept on the row (the body is not kept: it is the receiver's, not ours).
MAX_ERROR = 300

# Statements are built once (building and keying them costs more than running them). Updates go to the table
# (Core), not through the ORM: there are no loaded objects to synchronise, and results can be an executemany.
TABLE = WebhookDelivery.__table__
_D = WebhookDelivery
_DUE = (
    _D.status == "pending",
    _D.next_attempt_at <= bindparam("at"),
    or_(_D.lease_until.is_(None), _D.lease_until < bindparam("at")),
)
# The pick runs once, as a materialised CTE: as an ``IN (subquery)`` PostgreSQL may re-run a LIMIT … SKIP
# LOCKED subquery per outer row, and each re-run then leases one more row (the whole backlog). Its row locks
# re-check the conditions on a row another worker changed meanwhile (PostgreSQL); SQLite runs the whole
# statement under its single writer lock.
_PICK = (
    select(_D.id)
    .join(Webhook, Webhook.id == _D.webhook_id)
    .where(*_DUE, Webhook.enabled.is_(True))
    .order_by(_D.next_attempt_at)  # the due index's order: the scan stops after n rows
    .limit(bindparam("n", type_=Integer(), literal_execute=True))  # a known LIMIT keeps prepared plans on the index
    .with_for_update(skip_locked=True, of=_D)
    .cte("pick")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)
LEASE = (
    update(TABLE)
    .where(TABLE.c.id.in_(select(_PICK.c.id)))
    .values(lease_until=bindparam("new_lease"))
    .returning(TABLE.c.id)
)
LOAD = (
    select(_D, Webhook.name, Webhook.url, Webhook.secret_encrypted)
    .join(Webhook, Webhook.id == _D.webhook_id)
    .where(_D.id.in_(bindparam("ids", expanding=True)))
    .order_by(_D.id)
)
# A result is written only while the row still carries this worker's lease (one from a lapsed lease is dropped).
_MINE = (TABLE.c.id == bindparam("b_id"), TABLE.c.status == "pending", TABLE.c.lease_until == bindparam("b_lease"))
DELIVERED = (
    update(TABLE)
    .where(*_MINE)
    .values(status="delivered", delivered_at=bindparam("at"), attempts=TABLE.c.attempts + 1, lease_until=None)
    .values(last_status=bindparam("b_status"), last_error=None)
)


@dataclass(frozen=True)
class _Job:
    id: int
    webhook: str
    url: str
    secret: str
    event: str
    key: str
    body: bytes
    attempts: int
    lease_until: dt.datetime


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    ok: bool
    status: int | None
    error: str | None


def body_bytes(payload: dict) -> bytes:
    """The exact bytes sent (and signed): compact, key-sorted JSON, the same on every attempt."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


class Dispatcher:
    #: Deliveries sent in parallel (and leased per step).
    concurrency = 8

    def __init__(self, db: Database, webhooks: WebhookService, settings: Settings):
        self.db, self.webhooks, self.settings = db, webhooks, settings
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._secrets: dict[str, str] = {}  # sealed blob -> secret (a rotation changes the blob)

    def close(self) -> None:
        """Release the HTTP client and the sending threads (made again by the next round, if any)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            if self._client is not None:
                self._client.close()
                self._client = None

    def run_once(self, now: dt.datetime | None = None, limit: int = 50) -> int:
        """Send up to ``limit`` due deliveries; returns how many were attempted. ``now`` (tests) fixes the clock
        for leasing and scheduling."""
        done = 0
        while done < limit:
            jobs = self._lease(now, min(self.concurrency, limit - done))
            if not jobs:
                break
            client, pool = self._workers()
            self._record(list(pool.map(_send, [client] * len(jobs), jobs)), now)
            done += len(jobs)
        return done

    # ------------------------------------------------------------- steps

    def _workers(self) -> tuple[httpx.Client, ThreadPoolExecutor]:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self.settings.webhook_timeout,
                    follow_redirects=False,  # a redirect is a misconfiguration, not a delivery
                    headers={"User-Agent": f"Safehold/{__version__}"},
                )
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="safehold-webhook")
            return self._client, self._pool

    def _lease(self, now: dt.datetime | None, n: int) -> list[_Job]:
        at = now or utcnow()
        lease_until = at + dt.timedelta(seconds=self.settings.webhook_timeout + LEASE_GRACE)
        with self.db.session() as s:
            # The write comes first in the transaction: on SQLite it takes the writer lock at once (a read
            # first could not be upgraded after another process wrote).
            ids = list(s.scalars(LEASE, {"at": at, "n": n, "new_lease": lease_until}))
            if not ids:
                return []
            return [
                _Job(d.id, name, url, self._secret(sealed), d.event, d.idempotency_key, body_bytes(d.payload),
                     d.attempts, lease_until)
                for d, name, url, sealed in s.execute(LOAD, {"ids": ids})
            ]  # fmt: skip

    def _secret(self, sealed: str) -> str:
        secret = self._secrets.get(sealed)
        if secret is None:
            secret = self._secrets[sealed] = self.webhooks.open_secret(sealed)
        return secret

    def _record(self, outcomes: list[_Outcome], now: dt.datetime | None) -> None:
        at = now or utcnow()
        dead: list[_Outcome] = []
        with self.db.session() as s:
            delivered = [{"b_id": o.job.id, "b_lease": o.job.lease_until, "b_status": o.status, "at": at}
                         for o in outcomes if o.ok]  # fmt: skip
            if delivered:  # one executemany for the common case
                s.execute(DELIVERED, delivered)
            for o in outcomes:
                if o.ok:
                    continue
                attempts = o.job.attempts + 1
                values: dict = {"attempts": attempts, "lease_until": None, "last_status": o.status}
                values["last_error"] = o.error
                if attempts >= self.settings.webhook_max_attempts:
                    values["status"] = "dead"
                else:
                    values["next_attempt_at"] = at + self._backoff(attempts)
                params = {"b_id": o.job.id, "b_lease": o.job.lease_until}
                if s.execute(update(TABLE).where(*_MINE).values(**values), params).rowcount and "status" in values:
                    dead.append(o)
            for o in dead:  # last in the transaction, like every audit record
                detail = {"webhook": o.job.webhook, "event": o.job.event, "attempts": o.job.attempts + 1,
                          "last_status": o.status, "last_error": o.error}  # fmt: skip
                self.webhooks.audit.record(s, "system", "delivery.dead", f"delivery:{o.job.id}", detail)
        for o in outcomes:
            if not o.ok:
                log.warning("webhook %s delivery %s failed (%s)", o.job.webhook, o.job.id, o.error)

    def _backoff(self, attempts: int) -> dt.timedelta:
        return retry_delay(attempts, self.settings.webhook_backoff_seconds, self.settings.webhook_backoff_max_seconds)


def _send(client: httpx.Client, job: _Job) -> _Outcome:
    headers = {
        "Content-Type": "application/json",
        "Safehold-Event": job.event,
        "Safehold-Signature": sign(job.secret, job.body, int(time.time())),
        "Safehold-Idempotency-Key": job.key,
        "Safehold-Delivery": str(job.id),
    }
    try:
        r = client.post(job.url, content=job.body, headers=headers)
    except Exception as exc:  # any failure to get an answer is a failed attempt, never a stuck lease
        message = str(exc).replace(job.url, "<url>") or "no detail"  # URLs may carry tokens: never kept
        return _Outcome(job, False, None, f"{type(exc).__name__}: {message}"[:MAX_ERROR])
    if 200 <= r.status_code < 300:
        return _Outcome(job, True, r.status_code, None)
    return _Outcome(job, False, r.status_code, f"HTTP {r.status_code} {r.reason_phrase}"[:MAX_ERROR])
