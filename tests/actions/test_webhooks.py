"""Webhook receivers: secrets shown once and stored sealed, subscriptions, the outbox, audit records."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from safehold.actions.webhooks import safe_url, subscribed
from safehold.errors import SafeholdError
from safehold.store.models import Webhook


def _audit(svc, action):
    return [r for r in svc.audit.list(limit=1000) if r["action"] == action]


def test_create_shows_the_secret_once_and_stores_it_sealed(svc):
    hook, secret = svc.webhooks.create("platform", "https://hooks.example/x?token=abc", actor="user:admin")
    assert secret.startswith("whsec_") and len(secret) > 40
    assert "secret" not in hook and hook["events"] == [] and hook["enabled"] and hook["pending"] == 0
    with svc.db.session() as s:
        sealed = s.scalar(select(Webhook.secret_encrypted).where(Webhook.name == "platform"))
    assert secret not in sealed and svc.webhooks.open_secret(sealed) == secret
    (rec,) = _audit(svc, "webhook.create")
    assert rec["actor"] == "user:admin" and rec["target"] == "webhook:platform"
    assert rec["detail"]["url"] == "https://hooks.example/x"  # query strings may hold tokens: not recorded
    assert secret not in str(rec)


def test_rotate_replaces_the_secret_and_records_no_secret(svc):
    _, old = svc.webhooks.create("p", "http://127.0.0.1:9/h")
    new = svc.webhooks.rotate_secret("p", actor="cli")
    assert new != old and new.startswith("whsec_")
    with svc.db.session() as s:
        sealed = s.scalar(select(Webhook.secret_encrypted))
    assert svc.webhooks.open_secret(sealed) == new
    (rec,) = _audit(svc, "webhook.rotate_secret")
    assert new not in str(rec) and old not in str(rec)


@pytest.mark.parametrize(
    "url", ["", "ftp://example.org/x", "hooks.example/x", "http://", "javascript:alert(1)", "http://x/" + "a" * 2000]
)
def test_invalid_urls_are_refused(svc, url):
    with pytest.raises(SafeholdError) as e:
        svc.webhooks.create("p", url)
    assert e.value.code == "webhook.invalid_url"


def test_codes_for_names_events_duplicates_and_unknown(svc):
    svc.webhooks.create("p", "http://127.0.0.1:9/h")
    cases = [
        (lambda: svc.webhooks.create("p", "http://127.0.0.1:9/h"), "webhook.exists", 409),
        (lambda: svc.webhooks.create("bad name", "http://127.0.0.1:9/h"), "webhook.invalid_name", 400),
        (lambda: svc.webhooks.create("q", "http://127.0.0.1:9/h", events=["nuke"]), "webhook.invalid_events", 400),
        (lambda: svc.webhooks.update("p", events=["nuke"]), "webhook.invalid_events", 400),
        (lambda: svc.webhooks.get("nope"), "webhook.not_found", 404),
        (lambda: svc.webhooks.delete("nope"), "webhook.not_found", 404),
        (lambda: svc.webhooks.retry(999), "delivery.not_found", 404),
        (lambda: svc.webhooks.deliveries(status="lost"), "delivery.invalid_status", 400),
    ]
    for call, code, status in cases:
        with pytest.raises(SafeholdError) as e:
            call()
        assert (e.value.code, e.value.status) == (code, status)


def test_update_records_only_real_changes(svc):
    svc.webhooks.create("p", "http://127.0.0.1:9/h")
    out = svc.webhooks.update("p", events=["remove_content", "remove_content"], enabled=False, actor="cli")
    assert out["events"] == ["remove_content"] and out["enabled"] is False
    svc.webhooks.update("p", events=["remove_content"], actor="cli")  # no change: no record
    (rec,) = _audit(svc, "webhook.update")
    assert rec["detail"]["changes"] == {"events": [[], ["remove_content"]], "enabled": [True, False]}


def test_internal_kinds_go_only_to_receivers_that_list_them():
    assert subscribed([], "action.remove_content")
    assert not subscribed([], "action.preserve_evidence")
    assert not subscribed([], "action.open_report_draft")
    assert subscribed(["preserve_evidence"], "action.preserve_evidence")
    assert not subscribed(["preserve_evidence"], "action.remove_content")


def test_enqueue_writes_one_row_per_enabled_subscribed_receiver_in_the_callers_transaction(svc):
    svc.webhooks.create("all", "http://127.0.0.1:9/a")
    svc.webhooks.create("evidence", "http://127.0.0.1:9/e", events=["preserve_evidence"])
    svc.webhooks.create("off", "http://127.0.0.1:9/o")
    svc.webhooks.update("off", enabled=False)
    with svc.db.session() as s:
        assert svc.webhooks.enqueue(s, "action.remove_content", {"case": {"id": 1}}) == 1
        assert svc.webhooks.enqueue(s, "action.preserve_evidence", {"case": {"id": 1}}) == 1
    with pytest.raises(RuntimeError), svc.db.session() as s:
        svc.webhooks.enqueue(s, "action.remove_content", {"case": {"id": 2}})
        raise RuntimeError("the caller's transaction fails")
    rows = svc.webhooks.deliveries()
    assert [(d["webhook"], d["event"]) for d in rows] == [
        ("all", "action.remove_content"),
        ("evidence", "action.preserve_evidence"),
    ]
    for d in rows:
        assert d["payload"]["id"] == d["idempotency_key"] and d["payload"]["event"] == d["event"]
        assert d["status"] == "pending" and d["attempts"] == 0
    assert len({d["idempotency_key"] for d in rows}) == 2
    assert [h["pending"] for h in svc.webhooks.list()] == [1, 1, 0]


def test_test_queues_a_ping_for_that_receiver_only(svc):
    svc.webhooks.create("p", "http://127.0.0.1:9/h", events=["notify"])
    svc.webhooks.create("q", "http://127.0.0.1:9/q")
    d = svc.webhooks.test("p", actor="cli")
    assert d["event"] == "ping" and d["webhook"] == "p" and d["payload"]["webhook"] == "p"
    assert [x["id"] for x in svc.webhooks.deliveries(webhook="q")] == []
    svc.webhooks.update("q", enabled=False)
    with pytest.raises(SafeholdError) as e:
        svc.webhooks.test("q")
    assert e.value.code == "webhook.disabled"


def test_retry_resets_a_dead_delivery_and_refuses_a_delivered_one(svc):
    svc.webhooks.create("p", "http://127.0.0.1:9/h")
    d = svc.webhooks.test("p")
    from safehold.store.models import WebhookDelivery

    with svc.db.session() as s:
        row = s.get(WebhookDelivery, d["id"])
        row.status, row.attempts = "dead", 5
    out = svc.webhooks.retry(d["id"], actor="user:admin")
    assert out["status"] == "pending" and out["attempts"] == 0 and out["idempotency_key"] == d["idempotency_key"]
    (rec,) = _audit(svc, "delivery.retry")
    assert rec["target"] == f"delivery:{d['id']}" and rec["detail"] == {"webhook": "p", "status": "dead", "attempts": 5}
    with svc.db.session() as s:
        s.get(WebhookDelivery, d["id"]).status = "delivered"
    with pytest.raises(SafeholdError) as e:
        svc.webhooks.retry(d["id"])
    assert e.value.code == "delivery.delivered"


def test_delete_drops_the_receiver_and_its_deliveries(svc):
    svc.webhooks.create("p", "http://127.0.0.1:9/h")
    svc.webhooks.test("p")
    assert svc.webhooks.delete("p", actor="cli")["pending"] == 1
    assert svc.webhooks.list() == [] and svc.webhooks.deliveries() == []
    assert _audit(svc, "webhook.delete")[0]["detail"] == {"pending": 1, "dead": 0}


def test_safe_url_drops_credentials_query_and_fragment():
    assert safe_url("https://user:pw@h.example:8443/a/b?token=x#f") == "https://h.example:8443/a/b"
    assert safe_url("http://[::1]:9/h") == "http://[::1]:9/h"
