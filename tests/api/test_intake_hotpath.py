"""The intake hot path (chat messages, JSON events) answers ordinary requests with the services' work, committed
by the group committer, and hands refusals to the FastAPI routes."""

from __future__ import annotations

import pytest

from safehold.api.hotpath import template

MESSAGES = "/v1/conversations/c-1/messages"
EVENT = {"type": "content", "content": {"id": "post-1"}, "signals": [{"source": "user_report", "confidence": 0.9}]}


def _route_unused(monkeypatch, svc) -> None:
    """Make the FastAPI routes' service calls fail: an answer then came from the hot path."""

    def unused(*args, **kwargs):
        raise AssertionError("answered by the route, not the hot path")

    monkeypatch.setattr(svc.conversations, "add_messages", unused)
    monkeypatch.setattr(svc.events, "ingest", unused)


def test_a_message_and_its_retry_are_answered_on_the_hot_path(client, keys, svc, monkeypatch):
    _route_unused(monkeypatch, svc)
    msg = {"id": "m1", "author": "a", "text": "hello"}
    first = client.post(MESSAGES, json=msg, headers=keys["platform"])
    assert first.status_code == 200, first.text
    assert (first.json()["accepted"], first.json()["duplicates"]) == (1, 0)
    again = client.post(MESSAGES, json=msg, headers=keys["platform"])
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)
    assert svc.conversations.get("c-1")["messages"] == 1


def test_the_body_is_parsed_once_by_the_limits_and_used_by_the_hot_path(client, keys, svc, monkeypatch):
    from safehold import jsonlimits

    parsed = []
    loads = jsonlimits.loads
    monkeypatch.setattr(jsonlimits, "loads", lambda *a, **k: parsed.append(a[0]) or loads(*a, **k))
    _route_unused(monkeypatch, svc)
    r = client.post(MESSAGES, json={"id": "m1", "author": "a", "text": "hello"}, headers=keys["platform"])
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert len(parsed) == 1


def test_messages_are_written_back_by_the_batch_not_by_its_fallback(client, keys, svc, monkeypatch, caplog):
    """The batched runner writes every changed conversation back itself (one executemany); were that write wrong,
    the committer would quietly run each item again the plain way, so the test asserts the batch itself
    succeeded, and what it wrote."""
    import logging

    _route_unused(monkeypatch, svc)
    caplog.set_level(logging.INFO, logger="safehold.store.groupcommit")
    texts = ["hi there", "how old are you?", "i'm 13", "don't tell your parents about us"]
    for i, text in enumerate(texts * 2):
        conversation = f"/v1/conversations/c-{i % 2}/messages"
        msg = {"id": f"m{i}", "author": "a" if i % 4 != 2 else "b", "text": text}
        assert client.post(conversation, json=msg, headers=keys["platform"]).status_code == 200
    assert not [r for r in caplog.records if "failed as one" in r.getMessage()]
    for conversation in ("c-0", "c-1"):
        got = svc.conversations.get(conversation)
        assert got["messages"] == 4 and got["score"] > 0 and got["updated_at"] is not None, got


def test_an_event_and_its_retry_are_answered_on_the_hot_path(client, keys, svc, monkeypatch):
    _route_unused(monkeypatch, svc)
    headers = {**keys["platform"], "Idempotency-Key": "e-1"}
    first = client.post("/v1/events", json=EVENT, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False and first.json()["cases"][0]["created"] is True
    again = client.post("/v1/events", json=EVENT, headers=headers)
    assert again.json()["duplicate"] is True and again.json()["cases"] == first.json()["cases"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_are_the_routes(client, keys, svc):
    def code(r, status):
        assert r.status_code == status, r.text
        return r.json()["error"]["code"]

    platform = keys["platform"]
    assert code(client.post(MESSAGES, json={"id": "m"}), 401) == "auth.missing_key"
    assert code(client.post(MESSAGES, json={"id": "m", "author": "a", "text": "x"}, headers=keys["auditor"]), 403)
    assert code(client.post(MESSAGES, json={"id": "m", "author": "a"}, headers=platform), 422) == "request.invalid"
    long = {"id": "m", "author": "a", "text": "x" * 100_001}
    assert code(client.post(MESSAGES, json=long, headers=platform), 422) == "conversation.text_too_long"
    assert code(client.post("/v1/events", json=EVENT, headers=platform), 400) == "event.missing_idempotency_key"
    headers = {**platform, "Idempotency-Key": "e-2"}
    assert client.post("/v1/events", json=EVENT, headers=headers).status_code == 200
    other = {**EVENT, "content": {"id": "post-2"}}
    assert code(client.post("/v1/events", json=other, headers=headers), 409) == "event.idempotency_conflict"
    assert code(client.post("/v1/events", json=[1], headers=platform), 422) == "request.invalid"


def test_the_metrics_label_is_the_template():
    assert template(MESSAGES) == "/v1/conversations/{conversation_id}/messages"
    assert template("/v1/events") == "/v1/events"
    assert template("/v1/conversations/a/b/messages") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_committers_refusal_is_answered_on_the_hot_path_not_queued_again(client, keys, svc, monkeypatch):
    """An item shed for waiting too long (or refused by a full queue) is answered 503 intake.busy with
    Retry-After by the hot path itself: handing it to the route would queue its work again, for a client that
    has given up."""
    _route_unused(monkeypatch, svc)
    from safehold.errors import SafeholdError

    async def shed(key, work):  # what the committer answers an item it shed (tests/store/test_groupcommit.py)
        raise SafeholdError(
            "intake.busy", "The item waited 6000 ms to be written; retry in a second.", status=503,
            detail={"retry_after": 1, "waited_ms": 6000}, headers={"Retry-After": "1"},
        )  # fmt: skip

    monkeypatch.setattr(svc.writes, "run_async", shed)
    for path, body, headers in (
        (MESSAGES, {"id": "m1", "author": "a", "text": "hello"}, keys["platform"]),
        ("/v1/events", EVENT, {**keys["platform"], "Idempotency-Key": "e-9"}),
    ):
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "intake.busy" and r.json()["error"]["detail"]["waited_ms"] == 6000
