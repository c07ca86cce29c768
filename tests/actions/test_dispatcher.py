"""Delivery: signed, at least once, with back-off, dead letters, leases that survive a killed worker."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select, text

from safehold.actions.dispatcher import LEASE_GRACE, Dispatcher
from safehold.actions.signing import verify
from safehold.store.models import WebhookDelivery, utcnow
from tests.actions.conftest import REPO, Receiver, make_case


def _later(seconds: float = 1.0) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=seconds)


def _take(svc, kind="remove_content") -> dict:
    return svc.actions.take(make_case(svc), kind, "user:senior")


def _row(svc, delivery_id) -> WebhookDelivery:
    with svc.db.session() as s:
        return s.get(WebhookDelivery, delivery_id)


def test_a_delivery_is_signed_and_carries_its_idempotency_key(svc, receiver):
    _, secret = svc.webhooks.create("platform", receiver.url)
    action = _take(svc)
    assert svc.dispatcher.run_once() == 1
    (req,) = receiver.requests
    (d,) = svc.webhooks.deliveries()
    assert d["status"] == "delivered" and d["attempts"] == 1 and d["last_status"] == 200
    h = req.headers
    assert h["content-type"] == "application/json" and h["user-agent"].startswith("Safehold/")
    assert h["safehold-event"] == "action.remove_content" and h["safehold-delivery"] == str(d["id"])
    assert h["safehold-idempotency-key"] == d["idempotency_key"] == req.json["id"]
    assert verify(secret, h["safehold-signature"], req.body)
    assert req.json == d["payload"] and req.json["action"]["id"] == action["id"]
    assert svc.dispatcher.run_once() == 0  # nothing left


def test_receiver_down_for_a_while_loses_no_action(svc):
    down = Receiver().start()
    port = down.port
    down.stop()  # nothing listens on the port now
    svc.webhooks.create("platform", f"http://127.0.0.1:{port}/hooks")
    taken = [_take(svc)["id"] for _ in range(5)]
    now = utcnow()
    for _ in range(3):  # three rounds of connection refused, each one back-off later
        now += dt.timedelta(seconds=1)
        assert svc.dispatcher.run_once(now=now) == 5
    rows = svc.webhooks.deliveries()
    assert {(d["status"], d["attempts"]) for d in rows} == {("pending", 3)}
    assert all(d["last_error"].startswith("ConnectError") for d in rows)

    up = Receiver(port=port).start()  # the platform is back
    try:
        assert svc.dispatcher.run_once(now=now + dt.timedelta(seconds=1)) == 5
    finally:
        up.stop()
    assert sorted(r.json["action"]["id"] for r in up.requests) == taken
    assert {d["status"] for d in svc.webhooks.deliveries()} == {"delivered"}


def test_failures_back_off_then_dead_letter_and_a_retry_delivers(svc, receiver, settings):
    svc.webhooks.create("platform", receiver.url)
    receiver.respond = lambda r: 503
    d_id = _take(svc)["deliveries"][0]["id"]
    now = utcnow()
    assert svc.dispatcher.run_once(now=now) == 1
    row = _row(svc, d_id)
    assert row.status == "pending" and row.attempts == 1 and row.last_status == 503 and row.lease_until is None
    assert row.last_error == "HTTP 503 Service Unavailable"
    wait = (row.next_attempt_at - now).total_seconds()
    assert 0.8 * settings.webhook_backoff_seconds <= wait <= 1.2 * settings.webhook_backoff_seconds
    assert svc.dispatcher.run_once(now=now) == 0  # not due before its back-off
    for _ in range(settings.webhook_max_attempts - 1):
        now += dt.timedelta(seconds=1)
        assert svc.dispatcher.run_once(now=now) == 1
    assert _row(svc, d_id).status == "dead" and svc.dispatcher.run_once(now=_later(60)) == 0
    assert [d["id"] for d in svc.webhooks.deliveries(status="dead")] == [d_id]
    (rec,) = [r for r in svc.audit.list() if r["action"] == "delivery.dead"]
    assert rec["target"] == f"delivery:{d_id}" and rec["detail"]["attempts"] == settings.webhook_max_attempts

    receiver.respond = lambda r: 204
    svc.webhooks.retry(d_id, actor="user:admin")
    assert svc.dispatcher.run_once() == 1
    assert _row(svc, d_id).status == "delivered"
    assert len(set(receiver.keys())) == 1 and len(receiver.requests) == settings.webhook_max_attempts + 1


def test_backoff_doubles_with_jitter_up_to_the_cap(svc, settings):
    fast = settings.model_copy(update={"webhook_backoff_seconds": 2.0, "webhook_backoff_max_seconds": 10.0})
    d = Dispatcher(svc.db, svc.webhooks, fast)
    for attempts, base in [(1, 2), (2, 4), (3, 8), (4, 10), (12, 10)]:
        for _ in range(20):
            assert 0.8 * base <= d._backoff(attempts).total_seconds() <= 1.2 * base


def test_error_text_never_keeps_the_url(svc):
    svc.webhooks.create("platform", "http://127.0.0.1:1/hooks?token=s3cret")
    d_id = _take(svc)["deliveries"][0]["id"]
    svc.dispatcher.run_once()
    assert "s3cret" not in (_row(svc, d_id).last_error or "")


def test_a_disabled_receiver_holds_its_deliveries_until_enabled(svc, receiver):
    svc.webhooks.create("platform", receiver.url)
    _take(svc)
    svc.webhooks.update("platform", enabled=False)
    assert svc.dispatcher.run_once(now=_later()) == 0 and receiver.requests == []
    svc.webhooks.update("platform", enabled=True)
    assert svc.dispatcher.run_once(now=_later()) == 1


def test_two_workers_never_send_the_same_delivery(svc, receiver, settings):
    svc.webhooks.create("platform", receiver.url)
    for _ in range(24):
        _take(svc)
    workers = [Dispatcher(svc.db, svc.webhooks, settings) for _ in range(2)]
    counts: list[int] = []
    threads = [threading.Thread(target=lambda w=w: counts.append(w.run_once(limit=100))) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.close()
    assert sum(counts) == 24 and len(receiver.requests) == 24 and len(set(receiver.keys())) == 24


@pytest.fixture
def slow_poll(svc):
    """Deliveries are polled once a minute: one sent within seconds was woken by its commit."""
    svc.settings.webhook_poll_interval = 60


def test_the_background_worker_wakes_when_an_action_commits(svc, receiver, slow_poll, tasks_engine):
    svc.webhooks.create("platform", receiver.url)
    time.sleep(0.2)  # the first round found nothing; delivery now sleeps up to a minute
    _take(svc)
    assert receiver.arrived.wait(5)


KILLED_WORKER = """
from safehold.actions.dispatcher import Dispatcher
from safehold.actions.webhooks import WebhookService
from safehold.audit import AuditService
from safehold.config import Settings
from safehold.store.db import Database
from safehold.store.sealing import LocalKey, Sealer

s = Settings()
db = Database(s.effective_database_url)
hooks = WebhookService(db, AuditService(db), Sealer(LocalKey.load(s.key_file, s.instance_key)), s)
Dispatcher(db, hooks, s).run_once()
raise SystemExit("the receiver answered: this worker should have been killed first")
"""


def test_a_worker_killed_mid_delivery_is_redelivered_after_restart(svc, receiver, settings):
    _, secret = svc.webhooks.create("platform", receiver.url)
    d_id = _take(svc)["deliveries"][0]["id"]
    release = threading.Event()
    receiver.respond = lambda r: 200 if len(receiver.requests) > 1 else (release.wait(30), 500)[1]
    env = {
        **os.environ,
        "SAFEHOLD_HOME": str(settings.home),
        "SAFEHOLD_DATABASE_URL": settings.effective_database_url,
        "SAFEHOLD_WEBHOOK_TIMEOUT": "30",
    }
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER], env=env, cwd=REPO, stderr=subprocess.PIPE)
    try:
        arrived = receiver.arrived.wait(60)  # the receiver now holds the request
        assert arrived, worker.stderr.read().decode() if worker.poll() is not None else "no request arrived"
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        worker.kill()
        worker.stderr.close()
        release.set()
    leased = _row(svc, d_id)
    assert leased.status == "pending" and leased.attempts == 0 and leased.lease_until > utcnow()
    assert leased.lease_until - utcnow() <= dt.timedelta(seconds=30 + LEASE_GRACE)

    restarted = Dispatcher(svc.db, svc.webhooks, settings)
    try:
        assert restarted.run_once() == 0  # the dead worker's lease still holds: no second sender yet
        assert restarted.run_once(now=leased.lease_until + dt.timedelta(seconds=1)) == 1  # once it lapsed
    finally:
        restarted.close()
    row = _row(svc, d_id)
    assert row.status == "delivered" and row.attempts == 1
    first, second = receiver.requests
    assert first.key == second.key == row.idempotency_key and first.body == second.body
    assert verify(secret, second.headers["safehold-signature"], second.body)
    assert json.loads(second.body)["id"] == row.idempotency_key


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_close_before_any_round_is_harmless(svc):
    svc.dispatcher.close()
    svc.dispatcher.close()


def test_a_round_leases_only_what_it_sends(svc, receiver):
    """The lease takes ``n`` rows, however the planner runs it (PostgreSQL must not re-run a LIMIT … SKIP
    LOCKED subquery per row: with stale statistics that would lease the whole backlog at once)."""
    svc.webhooks.create("platform", receiver.url)
    if not svc.db.is_sqlite:
        with svc.db.session() as s:
            s.execute(text("ANALYZE webhook_deliveries"))  # statistics of an empty table, like a fresh install
    with svc.db.session() as s:
        for i in range(40):
            svc.webhooks.enqueue(s, "action.notify", {"case": {"id": i}})
    jobs = svc.dispatcher._lease(None, 3)
    with svc.db.session() as s:
        leased = s.scalar(select(func.count()).where(WebhookDelivery.lease_until.is_not(None)))
    assert len(jobs) == 3 and leased == 3
