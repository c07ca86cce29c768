"""Group commit (safehold.store.groupcommit): shared transactions, a failing item alone, a bounded queue, and the
doors that use it (a retry waiting in the same batch is a duplicate)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select

from safehold.errors import Conflict, SafeholdError
from safehold.store.groupcommit import GroupCommit
from safehold.store.models import Conversation, ConversationMessage, IngestedEvent


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
