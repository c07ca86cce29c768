"""/v1/exchanges: configure, inspect and fetch exchanges over HTTP; credentials go in and never come out."""

from __future__ import annotations

import hashlib
import time

SECRET = "api-secret-token-77"


def wait_for_round(client, headers, name: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get(f"/v1/exchanges/{name}", headers=headers).json()
        if not status["fetching"]:
            return status
        time.sleep(0.05)
    raise AssertionError("the round did not end")


def test_configure_fetch_and_read_an_exchange(client, keys, svc):
    admin = keys["admin"]
    assert client.post("/v1/banks", json={"name": "feeds"}, headers=admin).status_code == 201
    svc.settings.feeds_dir.mkdir(parents=True, exist_ok=True)
    values = [hashlib.md5(f"api {i}".encode()).hexdigest() for i in range(3)]
    (svc.settings.feeds_dir / "list.txt").write_text("\n".join(values))
    body = {
        "name": "local",
        "type": "feed",
        "bank": "feeds",
        "settings": {"url": "list.txt", "format": "list", "signal_type": "md5"},
        "credentials": {"bearer_token": SECRET},
        "every_seconds": 3600,
    }
    answers = [client.post("/v1/exchanges", json=body, headers=admin)]
    assert answers[0].status_code == 201, answers[0].text
    assert answers[0].json()["has_credentials"] is True
    assert client.post("/v1/exchanges", json=body, headers=admin).json()["error"]["code"] == "exchange.exists"
    answers.append(client.post("/v1/exchanges/local/fetch", headers=admin))
    assert answers[-1].status_code == 202
    status = wait_for_round(client, admin, "local")
    assert status["totals"]["added"] == 3 and status["last_error"] is None
    assert {e["value"] for e in svc.banks.entries("feeds")} == set(values)
    answers.append(client.get("/v1/exchanges", headers=keys["auditor"]))
    answers.append(client.get("/v1/exchanges/local", headers=admin))
    patched = client.patch("/v1/exchanges/local", json={"enabled": False, "credentials": {}}, headers=admin)
    answers.append(patched)
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["has_credentials"] is False  # the optional token removed
    types = client.get("/v1/exchanges/types", headers=admin).json()
    feed = next(t for t in types if t["name"] == "feed")
    assert "url" in feed["settings"]["properties"] and "bearer_token" in feed["credentials"]["properties"]
    assert all(SECRET not in r.text for r in answers)
    assert client.delete("/v1/exchanges/local", headers=admin).json() == {"deleted": "local"}
    assert client.get("/v1/exchanges/local", headers=admin).status_code == 404


def test_refusals_are_coded(client, keys):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "feeds"}, headers=admin)
    bad = {"name": "x", "type": "feed", "bank": "feeds", "settings": {"url": "http://example.org/"}}
    r = client.post("/v1/exchanges", json=bad, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "exchange.invalid_settings"
    r = client.post("/v1/exchanges", json={**bad, "type": "nope"}, headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "exchange.unknown_type"
    r = client.post("/v1/exchanges", json={**bad, "every_seconds": 1}, headers=admin)
    assert r.status_code == 422
    assert client.post("/v1/exchanges/missing/fetch", headers=admin).json()["error"]["code"] == "exchange.not_found"
    ok = {**bad, "settings": {"url": "list.txt"}}
    assert client.post("/v1/exchanges", json=ok, headers=keys["reviewer"]).status_code == 403
