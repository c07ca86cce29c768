"""The task interface: the registry, what each engine runs where, plug-in tasks, and kicks that never fail."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from safehold.background import UPKEEP, registry
from safehold.store.models import EvidenceItem
from safehold.workers import InProcess, Scope, Task, scheduled_fetch
from safehold.workers import tasks as task_module
from tests.actions.conftest import REPO
from tests.evidence.helpers import backdate, preserved

PER_PROCESS = {"index.sync", "terms.sync", "rules.sync", "counters.flush", "index.snapshot"}


def test_the_registry_holds_the_built_in_tasks():
    tasks = registry()
    assert {n for n, t in tasks.items() if t.scope is Scope.PROCESS} == PER_PROCESS
    shared = {n for n, t in tasks.items() if t.scope is Scope.SHARED}
    assert shared >= {"webhooks.deliver", "reports.file", "reports.followup", "evidence.purge", "events.prune",
                      "conversations.prune", "cases.refresh_priorities"}  # fmt: skip
    assert all(t.every is not None for t in tasks.values())  # each has a period: the safety net of a lost kick
    assert "webhooks.deliver" not in UPKEEP and "reports.file" not in UPKEEP  # upkeep never sends anything out
    assert UPKEEP[-1] == "index.snapshot"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_engine_runs_what_it_should_where_it_should(svc, monkeypatch):
    started = []
    monkeypatch.setattr(InProcess, "start", lambda self: started.append({t.name for t in self.tasks}))
    svc.tasks.start()
    svc.tasks.stop()
    svc.settings.tasks = "celery"
    svc.tasks.start()
    inprocess, celery = started
    assert inprocess == set(registry()) and celery == PER_PROCESS  # every process keeps its own memory current

    app = svc.tasks.celery
    assert {n for n in app.tasks if not n.startswith("celery.")} == set(registry()) - PER_PROCESS
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == svc.settings.task_visibility_timeout
    schedule = conf.beat_schedule
    assert set(schedule) == set(registry()) - PER_PROCESS
    assert schedule["webhooks.deliver"]["schedule"] == svc.settings.webhook_poll_interval
    assert schedule["evidence.purge"]["schedule"] == svc.settings.celery_upkeep_interval == 60  # not 2 messages/s
    # A round waiting behind a busy queue, or stamped by a beat whose clock is ahead, still runs.
    assert schedule["webhooks.deliver"]["options"]["expires"] == 60
    assert schedule["evidence.purge"]["options"]["expires"] == 60


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_plug_in_registers_a_scheduled_fetch(svc, monkeypatch):
    fetched = []
    fetch = scheduled_fetch("example", lambda s: fetched.append(s) or 0, every=lambda s: 0.05)

    class EntryPoint:
        name = "example-exchange"
        value = "example_exchange:TASKS"

        def load(self):
            return [fetch]

    monkeypatch.setattr(task_module.entrypoints, "installed", lambda group: [EntryPoint()])
    registry.cache_clear()
    try:
        assert registry()["fetch.example"] is fetch and fetch.scope is Scope.SHARED
        svc.tasks.start()
        deadline = time.monotonic() + 10
        while not fetched:
            assert time.monotonic() < deadline, "the fetch never ran"
            time.sleep(0.02)
        svc.tasks.stop()
        assert fetched[0] is svc
        svc.settings.tasks = "celery"
        assert "fetch.example" in svc.tasks.celery.conf.beat_schedule
    finally:
        registry.cache_clear()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failing_round_is_logged_and_the_task_keeps_running(svc, caplog):
    rounds = []

    def flaky(_svc):
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("database away")
        return 0

    engine = InProcess(svc, [Task("test.flaky", flaky, every=lambda s: 0.01)])
    engine.start()
    try:
        deadline = time.monotonic() + 10
        while len(rounds) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        engine.stop()
    assert "background task test.flaky failed" in caplog.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_kick_never_holds_up_the_caller_when_redis_is_away(svc, caplog):
    caplog.set_level(logging.WARNING, logger="safehold.workers.engine")
    svc.settings.tasks, svc.settings.redis_url = "celery", "redis://127.0.0.1:1/0"  # nothing listens there
    for _ in range(3):
        svc.tasks.start()  # as a server does
        t = time.monotonic()
        svc.tasks.kick("webhooks.deliver")  # as a request's after-commit hook does
        assert time.monotonic() - t < 0.1
        svc.tasks.stop()  # waits for the sender: the kick was tried, and dropped
    assert caplog.text.count("could not hand task webhooks.deliver to Celery") == 1  # not once per request


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_kicks_wait_for_a_slow_broker_on_the_sender_alone(svc, monkeypatch):
    """A broker that does not answer (a dropped connection) holds up one thread, and the kicks it misses meanwhile
    are one per task, however many requests kick."""
    svc.settings.tasks = "celery"
    sent, sending, answer = [], threading.Event(), threading.Event()

    def send(name):
        sending.set()
        answer.wait(10)
        sent.append(name)

    monkeypatch.setattr(svc.tasks._sender, "_send", send)
    svc.tasks.kick("webhooks.deliver")
    assert sending.wait(10)
    t = time.monotonic()
    for _ in range(1000):
        svc.tasks.kick("webhooks.deliver")
        svc.tasks.kick("reports.file")
    assert time.monotonic() - t < 1
    answer.set()
    svc.tasks.stop()
    assert sent[0] == "webhooks.deliver" and sorted(sent[1:]) == ["reports.file", "webhooks.deliver"]


@pytest.fixture
def overdue(svc) -> dict:
    """Evidence past its retention, there before the engine starts (the purge runs at most hourly)."""
    _, item = preserved(svc)
    backdate(svc, item["id"], 400)
    return item


def test_upkeep_runs_on_each_engine(svc, overdue, tasks_engine):
    item = overdue
    svc.tasks.kick("evidence.purge")  # in-process, its first round has already run; on Celery this is it
    deadline = time.monotonic() + 20
    while True:
        with svc.db.session() as s:
            if s.scalar(select(EvidenceItem.purged_by).where(EvidenceItem.id == item["id"])) == "system:retention":
                break
        assert time.monotonic() < deadline, "evidence past its retention was not purged"
        time.sleep(0.05)


def test_the_cli_starts_without_celery():
    code = "import sys, safehold.cli.main; assert 'celery' not in sys.modules, 'celery imported at start'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
