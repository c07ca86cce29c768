"""Conversations' scoring states kept in the process (safehold.rules.states): used only at the row's version, so a
write elsewhere (another API process, the one-request path), a failed batch or a failed commit never leaves a
stale state in use; bounded."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from safehold.rules.states import StateCache
from safehold.store.models import Conversation
from tests.rules.test_conversations import GROOMING

CHAT = GROOMING[:6]


def send(svc, cid: str, m: tuple[str, str, str]) -> dict:
    mid, author, text = m
    return svc.conversations.add_messages("platform", cid, {"id": mid, "author": author, "text": text})


def stored_state(svc, cid: str) -> dict:
    with svc.db.session() as s:
        return s.scalar(select(Conversation.state).where(Conversation.external_id == cid))


@pytest.fixture
def reference(svc) -> tuple[dict, dict]:
    """The last answer and the stored state of CHAT sent to one conversation with no state kept in the process."""
    svc.conversations.states.capacity = 0
    answers = [send(svc, "reference", m) for m in CHAT]
    svc.conversations.states.capacity = 4096
    return answers[-1]["assessment"], stored_state(svc, "reference")


def test_messages_reuse_the_kept_state_and_score_as_without(svc, reference):
    answers = [send(svc, "c", m) for m in CHAT]
    assert answers[-1]["assessment"] == reference[0]
    assert stored_state(svc, "c") == reference[1]
    assert len(svc.conversations.states) == 1  # "reference" kept none


def test_a_write_by_another_process_is_read_again(settings, svc, reference):
    """Two API processes on one store: each keeps the state it wrote; a message the other took changes the row's
    version, so the next message here reads the state instead of scoring on the one it kept."""
    from safehold.services import Services

    other = Services(settings)
    try:
        for i, m in enumerate(CHAT):
            answer = send(other if i in (2, 3) else svc, "c", m)
    finally:
        other.close()
    assert answer["assessment"] == reference[0]
    assert stored_state(svc, "c") == reference[1]


def test_a_write_by_the_one_request_path_is_read_again(svc, reference):
    svc.conversations.add_messages("platform", "c", {"id": CHAT[0][0], "author": CHAT[0][1], "text": CHAT[0][2]})
    interval, svc.writes.interval = svc.writes.interval, 0.0  # group commit off: one transaction, the ORM path
    send(svc, "c", CHAT[1])
    svc.writes.interval = interval
    answers = [send(svc, "c", m) for m in CHAT[2:]]
    assert answers[-1]["assessment"] == reference[0]


@pytest.mark.parametrize("failing", ["update", "commit"])
def test_a_failed_batch_or_commit_leaves_no_state_in_use(svc, reference, failing, monkeypatch):
    """The batch's update raises (the batch is run again item by item), or its commit fails (each item is
    committed alone): the state the batch changed is never used again — the row has another version."""
    for m in CHAT[:3]:
        send(svc, "c", m)
    failed = []

    def fail_once(*args):
        if not failed:
            failed.append(True)
            raise RuntimeError(f"{failing} failed")

    if failing == "update" and svc.db.is_sqlite:
        event.listen(
            svc.db.engine,
            "before_cursor_execute",
            lambda _c, _cur, sql, *a: sql.startswith("UPDATE conversations") and fail_once(),
        )
        send(svc, "c", CHAT[3])
    elif failing == "update":  # the driver's own statement fails (the batch sends it on the driver's connection)
        import psycopg

        executemany = psycopg.Cursor.executemany
        monkeypatch.setattr(
            psycopg.Cursor,
            "executemany",
            lambda cur, q, *a, **k: (
                str(q).startswith("UPDATE conversations") and fail_once(),
                executemany(cur, q, *a, **k),
            )[1],
        )
        send(svc, "c", CHAT[3])
    else:
        event.listen(svc.db.engine, "commit", fail_once)
        try:
            send(svc, "c", CHAT[3])
        finally:
            event.remove(svc.db.engine, "commit", fail_once)
    assert failed
    answers = [send(svc, "c", m) for m in CHAT[4:]]
    assert answers[-1]["assessment"] == reference[0]
    assert stored_state(svc, "c") == reference[1]


def test_a_batch_run_item_by_item_scores_each_request_of_a_conversation(svc, reference, monkeypatch):
    """A batch that fails as one is run again item by item in one transaction: a conversation's second request
    there finds the state the first left on the ORM row, and is scored on it (not refused)."""
    for m in CHAT[:3]:
        send(svc, "c", m)
    claim = svc.conversations._claim_many
    failed = []

    def fail_once(*args):
        if not failed:
            failed.append(True)
            raise RuntimeError("the batch fails as one")
        return claim(*args)

    monkeypatch.setattr(svc.conversations, "_claim_many", fail_once)
    svc.writes.interval = 0.3  # the three requests wait together: one batch
    futures = [
        svc.writes.submit(*svc.conversations.work("platform", "c", {"id": mid, "author": author, "text": text}))
        for mid, author, text in CHAT[3:]
    ]
    answers = [f.result(timeout=10) for f in futures]
    assert failed and [a["accepted"] for a in answers] == [1, 1, 1]
    assert answers[-1]["assessment"] == reference[0]
    assert stored_state(svc, "c") == reference[1]


def test_the_cache_gives_a_state_once_and_only_at_its_version():
    cache = StateCache(2)
    cache.keep(1, (3, "t1"), "state-1")
    assert cache.take(1, (3, "t2")) is None  # another version: a miss, and the entry is gone
    cache.keep(1, (3, "t1"), "state-1")
    assert cache.take(1, (3, "t1")) == "state-1"
    assert cache.take(1, (3, "t1")) is None  # taken: a batch that fails leaves nothing behind


def test_the_cache_is_bounded_least_recently_kept_first():
    cache = StateCache(2)
    for row in (1, 2, 1, 3):
        cache.keep(row, (row,), f"s{row}")
    assert len(cache) == 2
    assert cache.take(2, (2,)) is None and cache.take(1, (1,)) == "s1" and cache.take(3, (3,)) == "s3"
    none = StateCache(0)
    none.keep(1, (1,), "s")
    assert len(none) == 0
