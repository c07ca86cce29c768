"""Group commit (safehold.store.groupcommit): shared transactions, a failing item alone, a bounded queue, and the
doors that use it (a retry waiting in the same batch is a duplicate)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, func, insert, select

from safehold.auth.apikeys import Principal
from safehold.errors import Conflict, SafeholdError
from safehold.store.groupcommit import Batched, GroupCommit
from safehold.store.models import Conversation, ConversationMessage, IngestedEvent
from tests.store.test_db import driver_statements


def claim(key: str):
    """A work that writes an idempotency record (a plain insert: a taken key raises) and answers its session."""

    def work(s):
        s.execute(insert(IngestedEvent).values(key=key, body_sha256="0" * 64, result={}))
        return id(s)

    return work


def keys(svc) -> set[str]:
    with svc.db.session() as s:
        return set(s.scalars(select(IngestedEvent.key)))


def test_waiting_items_commit_in_one_transaction(svc):
    group = GroupCommit(svc.db, interval_ms=200, max_batch=100)
    futures = [group.submit("one-key", claim(f"k{i}")) for i in range(20)]
    sessions = {f.result(timeout=10) for f in futures}
    group.close()
    assert len(sessions) == 1  # one session, one transaction
    assert keys(svc) == {f"k{i}" for i in range(20)}


def test_a_full_batch_commits_without_waiting_the_interval(svc):
    group = GroupCommit(svc.db, interval_ms=1000, max_batch=5)
    futures = [group.submit("k", claim(f"k{i}")) for i in range(5)]
    assert {f.result(timeout=0.9) for f in futures}  # well before the interval
    group.close()


def test_one_failing_item_fails_alone(svc):
    with svc.db.session() as s:
        s.execute(insert(IngestedEvent).values(key="taken", body_sha256="0" * 64, result={}))
    group = GroupCommit(svc.db, interval_ms=200, max_batch=100)
    futures = [group.submit("k", claim(k)) for k in ("a", "b", "taken", "c")]
    group.close()
    assert futures[2].exception() is not None  # the constraint, for that request only
    assert all(f.exception() is None for i, f in enumerate(futures) if i != 2)
    assert keys(svc) == {"a", "b", "c", "taken"}


def test_a_waiter_that_gave_up_does_not_spoil_its_batch(svc):
    """A cancelled request (its client left, a shutdown timeout) still has its work committed; the rest of its
    batch is answered as usual, on the success path and on the one-failure path."""
    with svc.db.session() as s:
        s.execute(insert(IngestedEvent).values(key="taken", body_sha256="0" * 64, result={}))
    group = GroupCommit(svc.db, interval_ms=300, max_batch=100)
    futures = [group.submit("k", claim(k)) for k in ("a", "b", "c", "taken", "d")]
    assert futures[1].cancel()
    group.close()
    assert futures[1].cancelled() and futures[3].exception() is not None
    assert all(futures[i].exception() is None for i in (0, 2, 4))
    assert keys(svc) == {"a", "b", "c", "d", "taken"}


def test_a_returned_exception_is_raised_to_its_caller_and_the_batch_commits(svc):
    group = GroupCommit(svc.db, interval_ms=5)

    def refused(s):
        claim("kept")(s)
        return Conflict("event.idempotency_conflict", "another body")

    with pytest.raises(Conflict):
        group.run("k", refused)
    group.close()
    assert keys(svc) == {"kept"}


def test_a_full_queue_is_refused_with_503_and_retry_after(svc):
    group = GroupCommit(svc.db, interval_ms=1000, max_batch=100, max_queue=2)
    waiting = [group.submit("k", claim(k)) for k in ("a", "b")]
    with pytest.raises(SafeholdError) as refused:
        group.submit("k", claim("c"))
    assert (refused.value.code, refused.value.status) == ("intake.busy", 503)
    assert refused.value.headers == {"Retry-After": "1"}
    group.close()  # finishes what waits
    assert all(f.exception() is None for f in waiting)
    assert keys(svc) == {"a", "b"}


def test_off_runs_each_work_in_its_own_transaction_in_the_callers_thread(svc):
    group = GroupCommit(svc.db)
    assert not group.enabled
    assert group.run("k", lambda s: threading.current_thread()) is threading.current_thread()


def test_a_retry_waiting_in_the_same_batch_is_a_duplicate(svc):
    """The same message sent by several requests at once, while the first still waits for its commit: it is
    scored once; every other copy is a duplicate."""
    assert svc.writes.enabled  # on by default
    svc.writes.interval = 0.2  # long enough for all of them to wait together
    answers, lock = [], threading.Lock()

    def send(mid: str) -> None:
        out = svc.conversations.add_messages("p", "c1", {"id": mid, "author": "a", "text": "hi there"})
        with lock:
            answers.append(out)

    threads = [threading.Thread(target=send, args=(mid,)) for mid in ("m1", "m1", "m2", "m1", "m2", "m3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(a["accepted"] for a in answers) == 3
    assert sum(a["duplicates"] for a in answers) == 3
    with svc.db.session() as s:
        assert s.scalar(select(Conversation.messages).where(Conversation.external_id == "c1")) == 3
        assert s.scalar(select(func.count()).select_from(ConversationMessage)) == 3


# ------------------------------------------------------------------ batch-shaped works and shedding


@pytest.fixture
def batching(settings):
    """Services whose requests wait together (300 ms) on one writer, so a test's requests make one batch."""
    from safehold.services import Services

    s = Services(settings.model_copy(update={"group_commit_ms": 300.0, "group_commit_writers": 1}))
    yield s
    s.close()


def counting(svc, monkeypatch) -> list[str]:
    """The SQL statements run from now on (one entry per execute or executemany): on PostgreSQL every one the
    driver sends (a batch sends some on the driver's connection itself); on SQLite the engine's."""
    if not svc.db.is_sqlite:
        return driver_statements(monkeypatch)
    seen: list[str] = []
    event.listen(svc.db.engine, "before_cursor_execute", lambda conn, cur, sql, *a: seen.append(sql))
    return seen


def test_a_runner_answers_its_batch_and_a_runner_that_raises_falls_back_item_by_item(svc):
    calls = []

    def runner(s, args):
        calls.append(list(args))
        if "bad" in args:
            raise ValueError("one bad item spoils the batch-shaped run")
        return [claim(a)(s) for a in args]

    def alone(key):
        if key == "bad":
            return lambda s: 1 / 0
        return claim(key)

    group = GroupCommit(svc.db, interval_ms=200, max_batch=100)
    futures = [group.submit(k, Batched(runner, k, alone(k))) for k in ("a", "b")]
    assert {f.result(timeout=10) for f in futures} and calls == [["a", "b"]]  # one call for the batch
    futures = [group.submit(k, Batched(runner, k, alone(k))) for k in ("c", "bad", "d")]
    group.close()
    assert isinstance(futures[1].exception(), ZeroDivisionError)  # alone, that item fails, and it alone
    assert futures[0].exception() is None and futures[2].exception() is None
    assert keys(svc) == {"a", "b", "c", "d"}


def test_items_that_waited_past_max_wait_are_shed_without_their_work(svc):
    """A stalled writer (a slow commit, a lock): what waited longer than a client waits is answered 503
    intake.busy with Retry-After and its work never runs, so the client's retry is safe and the writer does not
    spend the overload on clients that left."""
    stall, stalled = threading.Event(), threading.Event()

    def stuck(s):
        stalled.set()
        assert stall.wait(10)
        return claim("first")(s)

    group = GroupCommit(svc.db, interval_ms=1, max_batch=100, max_wait_ms=50)
    first = group.submit("k", stuck)
    assert stalled.wait(10)
    late = [group.submit("k", claim(f"late{i}")) for i in range(3)]
    time.sleep(0.1)  # they wait past max_wait behind the stalled batch
    stall.set()
    fresh = group.submit("k", claim("fresh"))
    assert fresh.result(timeout=10) and first.result(timeout=10)
    group.close()
    for f in late:
        refused = f.exception(timeout=10)
        assert (refused.code, refused.status, refused.headers) == ("intake.busy", 503, {"Retry-After": "1"})
        assert refused.detail["waited_ms"] >= 50
    assert keys(svc) == {"first", "fresh"}  # the shed items' work never ran


def test_a_batch_of_chat_messages_takes_a_few_statements_not_a_few_per_message(batching, monkeypatch):
    """Twelve requests on three conversations (two for a conversation already stored, one message sent twice):
    one locked read, one insert of the new conversations, one claim, one update — and the same answers and
    counters as one transaction per request."""
    svc = batching
    svc.conversations.add_messages("p", "old", {"id": "m0", "author": "a", "text": "hi"})
    sent = [("old", "m1"), ("old", "m2"), ("new1", "x1"), ("new1", "x1"), ("new2", "y1")]
    sent += [("new1", f"x{i}") for i in range(2, 9)]
    seen = counting(svc, monkeypatch)
    futures = [
        svc.writes.submit(*svc.conversations.work("p", cid, {"id": mid, "author": "a", "text": "see you at practice"}))
        for cid, mid in sent
    ]
    answers = [f.result(timeout=10) for f in futures]
    assert [(a["accepted"], a["duplicates"]) for a in answers] == [(1, 0)] * 3 + [(0, 1)] + [(1, 0)] * 8
    assert answers[1]["assessment"]["messages"] == 3  # the second request saw the first's message
    assert len([q for q in seen if "conversation" in q]) <= 6, seen
    with svc.db.session() as s:
        counted = dict(s.execute(select(Conversation.external_id, Conversation.messages)).all())
        assert counted == {"old": 3, "new1": 8, "new2": 1}
        assert s.scalar(select(func.count()).select_from(ConversationMessage)) == 12


def test_a_batch_of_quiet_events_is_claimed_in_one_statement(batching, monkeypatch):
    """Events that record nothing (no signal, no case to attach to) are claimed with their answers at once; a
    retry in the batch is a duplicate, an event with a signal opens its case as alone."""
    platform = Principal(name="platform", role="platform", key_prefix="sh_one")

    def event(i: int, signal: bool = False) -> dict:
        body = {"type": "content", "idempotency_key": f"e{i}", "content": {"id": f"post-{i}", "media_type": "image"}}
        if signal:
            body["signals"] = [{"source": "user_report", "confidence": 0.4, "label": "platform-report"}]
        return body

    svc = batching
    seen = counting(svc, monkeypatch)
    bodies = [event(i) for i in range(10)] + [event(3), event(10, signal=True)]
    futures = [svc.writes.submit(*svc.events.work(platform, b, None)) for b in bodies]
    answers = [f.result(timeout=10) for f in futures]
    assert [a["duplicate"] for a in answers] == [False] * 10 + [True, False]
    assert answers[10] == {**answers[3], "duplicate": True}
    assert answers[11]["cases"] and not any(a["cases"] for a in answers[:11])
    quiet = [q for q in seen if "ingested_events" in q and "INSERT" in q.upper()]
    assert len(quiet) == 4, quiet  # the claim of the 8 quiet, the claim of e10 (a signal), the two e3 alone
    assert len(keys(svc)) == 11
