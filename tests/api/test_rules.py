"""/v1/rules: write, diff, approve by a second admin, shadow, go live, backtest; validation with stable codes."""

from __future__ import annotations

GROOMING = 'signals.exists(s, s.source == "grooming" && s.confidence > 0.8)'


def test_a_rule_goes_from_draft_to_live_through_a_second_admin(client, keys, svc):
    alice = keys["admin"]
    bob = {"Authorization": f"Bearer {svc.apikeys.create('bob', 'admin').token}"}
    body = {"name": "groom", "expression": GROOMING, "effect": {"type": "add_label", "label": "groom"}}
    r = client.post("/v1/rules", json=body, headers=alice)
    assert r.status_code == 201 and r.json()["status"] == "draft"
    r = client.patch("/v1/rules/groom", json={"expression": GROOMING.replace("0.8", "0.7")}, headers=alice)
    assert r.json()["version"] == 2
    assert "+" + GROOMING.replace("0.8", "0.7") in client.get("/v1/rules/groom/diff", headers=alice).json()["diff"]
    r = client.post("/v1/rules/groom/status", json={"status": "shadow"}, headers=alice)
    assert r.json()["status"] == "shadow"
    r = client.post("/v1/rules/groom/status", json={"status": "live"}, headers=alice)
    assert r.status_code == 409 and r.json()["error"]["code"] == "rules.not_approved"
    r = client.post("/v1/rules/groom/approve", json={}, headers=alice)
    assert r.status_code == 403 and r.json()["error"]["code"] == "rules.self_approval"
    assert client.post("/v1/rules/groom/approve", json={}, headers=bob).json()["approved"] is True
    assert client.post("/v1/rules/groom/status", json={"status": "live"}, headers=alice).json()["status"] == "live"
    assert [r["name"] for r in client.get("/v1/rules", headers=alice).json()["rules"]] == ["groom"]
    r = client.post("/v1/rules/groom/backtest", json={"days": 7}, headers=alice)
    assert r.status_code == 200 and r.json()["detections"] == 0
    assert client.get("/v1/rules/groom/shadow", headers=alice).json()["total"] == 0


def test_a_bad_expression_is_refused_with_its_position(client, keys):
    body = {"name": "bad", "expression": "grooming > ", "effect": {"type": "add_label", "label": "x"}}
    r = client.post("/v1/rules", json=body, headers=keys["admin"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "rules.syntax"
    assert r.json()["error"]["detail"]["column"] >= 1


def test_named_lists(client, keys):
    r = client.put("/v1/rules/lists/watched", json={"kind": "accounts", "items": ["u1"]}, headers=keys["admin"])
    assert r.json() == {"name": "watched", "kind": "accounts", "items": 1, "pending": False}
    assert client.get("/v1/rules/lists", headers=keys["admin"]).json()["lists"][0]["name"] == "watched"


def test_a_key_an_admin_made_is_her_when_approving(client, svc):
    """Review finding: approval compared labels, so alice approved her own rule through an admin key she made."""
    own = {"Authorization": f"Bearer {svc.apikeys.create('alice-bot', 'admin', created_by='user:alice').token}"}
    other = {"Authorization": f"Bearer {svc.apikeys.create('alice-bot-2', 'admin', created_by='user:alice').token}"}
    bob = {"Authorization": f"Bearer {svc.apikeys.create('bob-bot', 'admin', created_by='user:bob').token}"}
    body = {"name": "groom", "expression": GROOMING, "effect": {"type": "add_label", "label": "groom"}}
    assert client.post("/v1/rules", json=body, headers=own).status_code == 201
    r = client.post("/v1/rules/groom/approve", json={}, headers=other)
    assert r.status_code == 403 and r.json()["error"]["code"] == "rules.self_approval"
    assert client.post("/v1/rules/groom/approve", json={}, headers=bob).json()["approved"] is True
    # A list the live rule reads: alice's change waits for bob.
    client.put("/v1/rules/lists/watched", json={"kind": "accounts", "items": ["u1"]}, headers=own)
    body = {"name": "w", "expression": "subject.account_id in lists.watched", "effect": body["effect"]}
    client.post("/v1/rules", json=body, headers=own)
    client.post("/v1/rules/w/approve", json={}, headers=bob)
    assert client.post("/v1/rules/w/status", json={"status": "live"}, headers=own).json()["status"] == "live"
    r = client.put("/v1/rules/lists/watched", json={"kind": "accounts", "items": ["u1", "u2"]}, headers=own)
    assert r.json()["pending"] is True
    r = client.post("/v1/rules/lists/watched/approve", headers=other)
    assert r.status_code == 403 and r.json()["error"]["code"] == "rules.self_approval"
    r = client.post("/v1/rules/lists/watched/approve", headers=bob)
    assert r.status_code == 200 and r.json()["items"] == 2 and r.json()["pending"] is None
