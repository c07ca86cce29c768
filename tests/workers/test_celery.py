"""SAFEHOLD_TASKS=celery with real processes on the local Redis and PostgreSQL: a worker killed mid-task loses
nothing and does nothing twice; two API processes and two workers deliver every webhook once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import func, select, update

from safehold.actions.webhooks import WebhookService
from safehold.store.models import WebhookDelivery, utcnow
from safehold.workers.celery_app import QUEUE
from tests.actions.conftest import REPO, make_case
from tests.test_serve import _free_port

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


@pytest.fixture
def settings(tmp_path, database_url, redis_url):
    from safehold.config import Settings

    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        tasks="celery",
        redis_url=redis_url,
        task_visibility_timeout=2,  # a dead worker's task is given to another after 2 s (not 10 minutes)
        webhook_backoff_seconds=0.2,
        webhook_backoff_max_seconds=0.5,
        webhook_poll_interval=0.3,
        webhook_timeout=30,
    )


def _env(settings, **extra) -> dict:
    return {
        **os.environ,
        "SAFEHOLD_HOME": str(settings.home),  # the same instance key: workers open the webhook secrets
        "SAFEHOLD_DATABASE_URL": settings.effective_database_url,
        "SAFEHOLD_TASKS": "celery",
        "SAFEHOLD_REDIS_URL": settings.redis_url,
        "SAFEHOLD_TASK_VISIBILITY_TIMEOUT": str(settings.task_visibility_timeout),
        "SAFEHOLD_WEBHOOK_TIMEOUT": str(settings.webhook_timeout),
        "SAFEHOLD_WEBHOOK_POLL_INTERVAL": str(settings.webhook_poll_interval),
        "SAFEHOLD_WEBHOOK_BACKOFF_SECONDS": str(settings.webhook_backoff_seconds),
        "SAFEHOLD_WEBHOOK_BACKOFF_MAX_SECONDS": str(settings.webhook_backoff_max_seconds),
        **extra,
    }


class Processes:
    """``safehold …`` subprocesses, their output in files (shown when a check fails), all killed at the end."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.running: list[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{len(self.running)}-{args[0]}.log", "w")  # closed in stop()
        p = subprocess.Popen([sys.executable, "-m", "safehold", *args], env=self.env, cwd=REPO, stdout=log,
                             stderr=subprocess.STDOUT)  # fmt: skip
        p.log = log
        self.running.append(p)
        return p

    def output(self) -> str:
        return "\n".join(f"--- {p.args[3:]}\n{Path(p.log.name).read_text()[-3000:]}" for p in self.running)

    def stop(self) -> None:
        for p in self.running:
            if p.poll() is None:
                p.terminate()
        for p in self.running:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            p.log.close()


@pytest.fixture
def processes(settings, tmp_path):
    procs = Processes(_env(settings), tmp_path)
    yield procs
    procs.stop()


def _until(check: Callable[[], bool], what: str, procs: Processes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}\n{procs.output()}"
        time.sleep(0.05)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _statuses(svc) -> collections.Counter:
    with svc.db.session() as s:
        q = select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        return collections.Counter(dict(s.execute(q).all()))


def test_a_worker_killed_mid_delivery_loses_nothing_and_does_nothing_twice(svc, receiver, processes, settings):
    svc.webhooks.create("platform", receiver.url)
    effects: collections.Counter = collections.Counter()  # what the platform did, once per idempotency key
    release = threading.Event()

    def respond(r) -> int:
        if r.key not in effects:
            effects[r.key] += 1  # the platform acts on the first attempt...
            release.wait(30)  # ...and is slow to answer: the worker is killed before the answer comes
        return 204

    receiver.respond = respond
    with svc.db.session() as s:  # three deliveries in one commit: one kick, one Celery message
        for i in range(3):
            svc.webhooks.enqueue(s, "action.notify", {"case": {"id": i}})
    broker = redis.Redis.from_url(settings.redis_url)
    _until(lambda: broker.llen(QUEUE) == 1, "the kick was not sent", processes)  # by the sender thread
    time.sleep(0.2)
    assert broker.llen(QUEUE) == 1

    first = processes.start("worker", "--concurrency", "1")
    _until(lambda: len(receiver.requests) == 3, "the worker did not send the three deliveries", processes)
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    release.set()
    # Taken, never acknowledged: still unacked, or already restored to the queue (a worker restores messages older
    # than the visibility timeout, its own included, so on a slow machine the dying worker may have done it).
    assert broker.llen(QUEUE) + broker.hlen("unacked") == 1
    with svc.db.session() as s:
        rows = list(s.scalars(select(WebhookDelivery)))
        assert {(d.status, d.attempts) for d in rows} == {("pending", 0)} and all(d.lease_until for d in rows)
        # What time does to the dead worker's leases (webhook_timeout + 30 s): they lapse.
        s.execute(update(WebhookDelivery).values(lease_until=utcnow()))

    processes.start("worker", "--concurrency", "1")  # no beat, no new kick: only the redelivered message
    _until(lambda: _statuses(svc) == {"delivered": 3}, "the redelivered task did not deliver", processes)
    _until(lambda: broker.hlen("unacked") == 0, "the redelivered message was not acknowledged", processes)
    with svc.db.session() as s:
        assert {d.attempts for d in s.scalars(select(WebhookDelivery))} == {1}
    keys = [r.key for r in receiver.requests]
    assert len(keys) == 6 and set(collections.Counter(keys).values()) == {2}  # each sent again, same key
    assert sorted(effects) == sorted(set(keys)) and set(effects.values()) == {1}  # each acted on once


def test_two_api_processes_and_two_workers_deliver_every_webhook_once(svc, receiver, processes, keys):
    svc.webhooks.create("platform", receiver.url)
    attempts: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def respond(r) -> int:
        with lock:
            attempts[r.key] += 1
            first = attempts[r.key] == 1
        # Every fourth case's first attempt fails: it is retried after its back-off.
        return 503 if first and r.json["case"]["id"] % 4 == 0 else 204

    receiver.respond = respond
    ports = [_free_port(), _free_port()]
    servers = [processes.start("serve", "--port", str(p)) for p in ports]  # each only kicks: no delivery threads
    for _ in range(2):
        processes.start("worker", "--concurrency", "2")
    processes.start("beat")
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    for server, base in zip(servers, bases, strict=True):
        _until(lambda b=base, s=server: s.poll() is not None or _healthy(b), "no server", processes, timeout=120)
        assert server.poll() is None, processes.output()

    cases = [make_case(svc) for _ in range(24)]

    def decide(base: str, ids: list[int]) -> None:
        with httpx.Client(base_url=base, headers=keys["senior_reviewer"], timeout=30) as client:
            for case_id in ids:
                r = client.post(f"/v1/cases/{case_id}/actions", json={"kind": "remove_content"})
                assert r.status_code == 201, r.text

    threads = [threading.Thread(target=decide, args=(b, cases[i::2])) for i, b in enumerate(bases)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _until(lambda: _statuses(svc) == {"delivered": 24}, "not every webhook was delivered", processes, timeout=40)

    delivered = {r.key: r.json["case"]["id"] for r in receiver.requests}
    assert sorted(delivered.values()) == sorted(cases)  # every case's delivery arrived
    retried = {k for k, case_id in delivered.items() if case_id % 4 == 0}
    assert retried and all(attempts[k] == (2 if k in retried else 1) for k in delivered)  # and only once accepted

    silent = WebhookService(svc.db, svc.audit, svc.sealer, svc.settings)  # queues without kicking anyone
    with svc.db.session() as s:
        silent.enqueue(s, "action.notify", {"case": {"id": 0}})
    _until(lambda: _statuses(svc) == {"delivered": 25}, "the beat's schedule did not deliver", processes)
