"""Policies, webhooks, deliveries and manual actions over HTTP."""

from __future__ import annotations

from safehold.store.models import WebhookDelivery
from tests.actions.conftest import make_case


def test_webhook_lifecycle(client, keys, svc):
    admin = keys["admin"]
    r = client.post("/v1/webhooks", json={"name": "platform", "url": "http://127.0.0.1:9/h"}, headers=admin)
    assert r.status_code == 201 and r.json()["secret"].startswith("whsec_")
    secret = r.json()["secret"]
    listed = client.get("/v1/webhooks", headers=admin).json()
    assert [h["name"] for h in listed] == ["platform"] and "secret" not in listed[0] and secret not in str(listed)
    r = client.patch("/v1/webhooks/platform", json={"events": ["remove_content"], "enabled": True}, headers=admin)
    assert r.status_code == 200 and r.json()["events"] == ["remove_content"]
    r = client.patch("/v1/webhooks/platform", json={"url": "mailto:x@y"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    assert "an absolute http:// or https:// URL" in r.json()["error"]["message"]
    rotated = client.post("/v1/webhooks/platform/rotate-secret", headers=admin).json()
    assert rotated["name"] == "platform" and rotated["secret"] not in (secret, None)

    ping = client.post("/v1/webhooks/platform/test", headers=admin)
    assert ping.status_code == 202 and ping.json()["event"] == "ping"
    page = client.get("/v1/deliveries", params={"webhook": "platform"}, headers=admin).json()
    assert [d["id"] for d in page["deliveries"]] == [ping.json()["id"]] and page["next_after_id"] is None
    with svc.db.session() as s:
        s.get(WebhookDelivery, ping.json()["id"]).status = "dead"
    dead = client.get("/v1/deliveries", params={"status": "dead"}, headers=admin).json()["deliveries"]
    assert [d["id"] for d in dead] == [ping.json()["id"]]
    r = client.post(f"/v1/deliveries/{ping.json()['id']}/retry", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    r = client.get("/v1/deliveries", params={"status": "lost"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"

    assert client.delete("/v1/webhooks/platform", headers=admin).status_code == 200
    r = client.get("/v1/webhooks/platform", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook.not_found"
    r = client.post("/v1/deliveries/12345/retry", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "delivery.not_found"


def test_policy_lifecycle(client, keys):
    admin = keys["admin"]
    body = {"name": "auto-ncmec", "trigger": "auto", "match": {"bank": "ncmec"}, "actions": ["block_content"]}
    r = client.post("/v1/policies", json=body, headers=admin)
    assert r.status_code == 201 and r.json()["updated_by"] == "apikey:test-admin"
    assert client.post("/v1/policies", json=body, headers=admin).json()["error"]["code"] == "policy.exists"
    bad = {**body, "name": "x", "match": {"bank": "ncmec", "colour": "red"}}
    r = client.post("/v1/policies", json=bad, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    twice = {**body, "name": "z", "actions": ["notify", {"kind": "notify"}]}
    r = client.post("/v1/policies", json=twice, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "policy.duplicate_action"
    r = client.post("/v1/policies", json={**body, "name": "y", "trigger": "sometimes"}, headers=admin)
    assert r.status_code == 422
    names = [p["name"] for p in client.get("/v1/policies", headers=admin).json()]
    assert names == ["auto-ncmec", "confirmed-csam", "confirmed-exploitation"]
    actions = [{"kind": "notify", "params": {"template": "removed"}}]
    r = client.patch("/v1/policies/auto-ncmec", json={"actions": actions, "enabled": False}, headers=admin)
    assert r.json()["actions"] == actions and r.json()["enabled"] is False
    assert client.get("/v1/policies/auto-ncmec", headers=admin).json()["actions"] == actions
    assert client.delete("/v1/policies/auto-ncmec", headers=admin).status_code == 200
    r = client.get("/v1/policies/auto-ncmec", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "policy.not_found"


def test_manual_action_needs_a_senior_reviewer(client, keys, svc):
    svc.webhooks.create("platform", "http://127.0.0.1:9/h")
    case_id = make_case(svc)
    url = f"/v1/cases/{case_id}/actions"
    assert client.post(url, json={"kind": "suspend_account"}, headers=keys["reviewer"]).status_code == 403
    r = client.post(url, json={"kind": "suspend_account", "params": {"reason": "tos"}}, headers=keys["senior_reviewer"])
    assert r.status_code == 201, r.text
    action = r.json()
    assert action["actor"] == "apikey:test-senior_reviewer" and action["deliveries"][0]["status"] == "pending"
    again = client.post(url, json={"kind": "suspend_account"}, headers=keys["senior_reviewer"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "action.exists"
    r = client.post(url, json={"kind": "nuke"}, headers=keys["admin"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    r = client.post("/v1/cases/999999/actions", json={"kind": "notify"}, headers=keys["admin"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "case.not_found"
    by_case = client.get("/v1/deliveries", params={"case_id": case_id}, headers=keys["admin"]).json()["deliveries"]
    assert [d["action_id"] for d in by_case] == [action["id"]]
