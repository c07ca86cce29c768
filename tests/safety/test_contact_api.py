"""The contact policy over HTTP (the hot path and the route), the CLI and the console."""

from __future__ import annotations

import json

import pytest

from safehold.safety.contact import DEFAULT_POLICY
from tests.web.conftest import app, open_console, staff_users, totp_secrets  # noqa: F401 - the console's fixtures

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CHECK = "/v1/interactions/check"
POLICY = "/v1/safety/contact-policy"
BLOCK_CALLS = {"rules": [{"name": "calls.off", "kinds": ["call"], "outcome": "block", "reason": "no calls"}]}


def bands(svc):
    svc.ages.record("t", "kid", "platform", band="13-15")
    svc.ages.record("t", "teen", "platform", band="16-17")
    svc.ages.record("t", "grown", "platform", band="adult")


def code(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


@sqlite_only
def test_the_check_on_the_hot_path_and_the_route_agree(client, keys, svc):
    bands(svc)
    body = {"sender": "grown", "recipient": "kid", "kind": "message"}
    r = client.post(CHECK, json=body, headers=keys["platform"])
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
    assert r.json() == svc.contact.check("grown", "kid", "message")
    assert r.json()["decision"] == "block" and r.json()["prompt"] == "contact.blocked"
    body |= {"relationship": {"mutual_contacts": 4}, "sender_created_at": "2020-01-01T00:00:00Z", "locale": "pt-BR"}
    assert client.post(CHECK, json=body, headers=keys["platform"]).json()["decision"] == "friction"
    # The admin key may check too, through the route: the same answer.
    assert client.post(CHECK, json=body, headers=keys["admin"]).json()["decision"] == "friction"


@sqlite_only
def test_refusals_and_bad_bodies(client, keys, svc):
    ok = {"sender": "a", "recipient": "b", "kind": "follow"}
    assert code(client.post(CHECK, json=ok), 401) == "auth.missing_key"
    assert code(client.post(CHECK, json=ok, headers=keys["auditor"]), 403) == "auth.forbidden"
    platform = keys["platform"]
    assert code(client.post(CHECK, json={**ok, "kind": "poke"}, headers=platform), 422) == "request.invalid"
    assert code(client.post(CHECK, json={**ok, "sender": ""}, headers=platform), 422) == "request.invalid"
    bad_rel = {**ok, "relationship": {"mutual_contacts": -1}}
    assert code(client.post(CHECK, json=bad_rel, headers=platform), 422) == "request.invalid"
    assert code(client.post(CHECK, content=b"{nope", headers=platform), 422) == "request.invalid"


@sqlite_only
def test_policy_read_change_validate_reset(client, keys, svc):
    shown = client.get(POLICY, headers=keys["auditor"]).json()
    assert shown["version"] == 0 and shown["builtin"] and shown["history"] == []
    assert code(client.put(POLICY, json=BLOCK_CALLS, headers=keys["auditor"]), 403) == "auth.forbidden"
    assert code(client.get(POLICY, headers=keys["platform"]), 403) == "auth.forbidden"
    bad = client.put(
        POLICY, json={"rules": [{"name": "x", "outcome": "friction", "reason": "r"}]}, headers=keys["admin"]
    )
    assert code(bad, 422) == "contact.invalid_policy"
    assert "a friction needs a prompt" in bad.json()["error"]["message"]
    saved = client.put(POLICY, json=BLOCK_CALLS, headers=keys["admin"]).json()
    assert saved["version"] == 1 and saved["author"] == "apikey:test-admin"
    call = {"sender": "a", "recipient": "b", "kind": "call"}
    assert client.post(CHECK, json=call, headers=keys["platform"]).json()["policy_version"] == 1
    v = client.post(f"{POLICY}/validate", json=DEFAULT_POLICY, headers=keys["auditor"]).json()
    assert v == {"valid": True, "rules": len(DEFAULT_POLICY["rules"])}
    assert code(client.post(f"{POLICY}/validate", json={"rules": 3}, headers=keys["auditor"]), 422) == (
        "contact.invalid_policy"
    )
    reset = client.post(f"{POLICY}/reset", headers=keys["admin"]).json()
    assert reset["version"] == 2 and reset["policy"]["rules"][0]["name"] == "risk.grooming"


def test_cli(cli, svc, tmp_path):
    bands(svc)
    out = cli("contact", "check", "grown", "teen", "--kind", "message", "--json").stdout
    assert json.loads(out)["decision"] == "friction"
    assert "allow" in cli("contact", "check", "grown", "teen", "--prior-conversation").stdout
    assert "block" in cli("contact", "check", "grown", "kid", "--mutual", "1").stdout
    assert "contact.invalid" in cli("contact", "check", "a", "b", "--kind", "poke", code=2).stderr
    assert "under16.stranger_contact" in cli("contact", "policy", "show").stdout
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(BLOCK_CALLS))
    bad.write_text(json.dumps({"rules": [{"name": "Bad Name", "outcome": "allow"}]}))
    assert "valid: 1 rules" in cli("contact", "policy", "test", good).stdout
    err = cli("contact", "policy", "test", bad, code=2).stderr
    assert "contact.invalid_policy" in err and "rules.0.reason" in err
    assert "v1 saved and active" in cli("contact", "policy", "set", good).stdout
    assert json.loads(cli("contact", "policy", "show", "--json").stdout)["version"] == 1
    assert "built-in default" in cli("contact", "policy", "reset").stdout
    (tmp_path / "junk.json").write_text("{nope")
    assert "cli.invalid_json" in cli("contact", "policy", "set", tmp_path / "junk.json", code=2).stderr


@sqlite_only
def test_console_page(svc, staff_users, open_console):  # noqa: F811
    bands(svc)
    rita = open_console("rita")  # a reviewer: reads and tries, cannot edit
    page = rita.get("/console/safety/contact-policy?sender=grown&recipient=kid&kind=call")
    assert page.status_code == 200 and "under16.stranger_contact" in page.text
    assert 'id="tried"' in page.text and "block" in page.text and 'name="policy"' not in page.text
    assert 'href="/console/safety/contact-policy"' in page.text  # in the navigation
    assert rita.post("/console/safety/contact-policy", {"policy": "{}"}).status_code == 403
    ada = open_console("ada")
    bad = ada.post("/console/safety/contact-policy", {"policy": json.dumps({"rules": [{"name": "x"}]})})
    assert bad.status_code == 422 and 'id="policy-errors"' in bad.text and "rules.0.outcome" in bad.text
    junk = ada.post("/console/safety/contact-policy", {"policy": "{nope"})
    assert junk.status_code == 422 and "not valid JSON" in junk.text
    ok = ada.post("/console/safety/contact-policy", {"policy": json.dumps(BLOCK_CALLS)})
    assert ok.status_code == 303
    assert "calls.off" in ada.get("/console/safety/contact-policy").text
    assert ada.post("/console/safety/contact-policy/reset").status_code == 303
    assert svc.contact.show()["policy"]["rules"][0]["name"] == "risk.grooming"


@sqlite_only
def test_a_check_that_needs_the_database_runs_in_a_thread(client, keys, svc, monkeypatch):
    """Database work (a band not cached, a policy or risk refresh) never runs on the event loop; a check answered
    from memory stays on it."""
    from safehold.api.routes import safety

    threaded = []
    real = safety.run_in_threadpool

    async def spy(fn, *args):
        threaded.append(fn)
        return await real(fn, *args)

    monkeypatch.setattr(safety, "run_in_threadpool", spy)
    body = {"sender": "cold-a", "recipient": "cold-b", "kind": "message"}
    assert client.post(CHECK, json=body, headers=keys["platform"]).status_code == 200
    assert len(threaded) == 1  # nothing cached: in a thread
    assert client.post(CHECK, json=body, headers=keys["platform"]).status_code == 200
    assert len(threaded) == 1  # everything in memory now: on the loop
    assert client.post(CHECK, json=body, headers=keys["admin"]).status_code == 200  # the FastAPI route, same rule
    assert len(threaded) == 1
