"""`POST /v1/text/check`: solicitation checks of posts over HTTP, the case they open, idempotency, bad input."""

from __future__ import annotations

from sqlalchemy import func, select

from safehold.signals.url import url_hash
from safehold.store.models import Case, IngestedEvent

HIGH = "kids for sale, contact me on telegram"


def count(svc, model) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_check_opens_a_case_and_replays(client, keys, svc):
    body = {"text": HIGH, "kind": "listing", "content_id": "l1", "account_id": "u1"}
    r = client.post("/v1/text/check", json=body, headers={**keys["platform"], "Idempotency-Key": "k1"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"accepted", "duplicate", "result", "url_matches", "case"}
    assert out["result"]["level"] == "high" and out["result"]["explanation"]
    assert out["case"]["created"] and out["case"]["status"] == "open"
    case = client.get(f"/v1/cases/{out['case']['id']}", headers=keys["admin"]).json()
    assert case["queue"] == "text" and case["source"] == "solicitation"
    again = client.post("/v1/text/check", json=body, headers={**keys["platform"], "Idempotency-Key": "k1"}).json()
    assert again == {**out, "duplicate": True}
    changed = client.post(
        "/v1/text/check", json={**body, "text": HIGH + "!"}, headers={**keys["platform"], "Idempotency-Key": "k1"}
    )
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "text.idempotency_conflict"
    # Without a key, a retry of the same text for the same item is recognised too.
    body2 = {"text": HIGH, "content_id": "l2"}
    first = client.post("/v1/text/check", json=body2, headers=keys["platform"]).json()
    assert client.post("/v1/text/check", json=body2, headers=keys["platform"]).json() == {**first, "duplicate": True}
    assert count(svc, Case) == 2


def test_ordinary_text_leaves_no_trace(client, keys, svc):
    body = {"text": "Selling my old bike, good condition, call 555 123 4567", "kind": "listing", "content_id": "b1"}
    out = client.post("/v1/text/check", json=body, headers=keys["platform"]).json()
    assert out["case"] is None and out["result"]["level"] == "low"
    assert count(svc, Case) == count(svc, IngestedEvent) == 0


def test_banked_link(client, keys, svc):
    svc.banks.create("links", created_by="test")
    svc.banks.add_hash("links", "url", url_hash("bad.example/folder/"))
    body = {"text": "more at https://bad.example/folder/a", "content_id": "c9"}
    out = client.post("/v1/text/check", json=body, headers=keys["platform"]).json()
    assert out["url_matches"][0]["matches"][0]["bank"] == "links" and out["case"]["created"]


def test_bad_input_and_roles(client, keys):
    def code(r, status):
        assert r.status_code == status, r.text
        return r.json()["error"]["code"]

    post = client.post
    ok = {"text": "hello", "content_id": "c1"}
    assert code(post("/v1/text/check", json={"text": "hello"}, headers=keys["platform"]), 422) == "request.invalid"
    assert code(post("/v1/text/check", json={**ok, "kind": "tweet"}, headers=keys["platform"]), 422)
    assert code(post("/v1/text/check", json={**ok, "text": "x" * 100_001}, headers=keys["platform"]), 422)
    assert code(post("/v1/text/check", json={**ok, "surprise": 1}, headers=keys["platform"]), 422)
    mismatch = post("/v1/text/check", json={**ok, "idempotency_key": "a"}, headers={**keys["platform"],
                    "Idempotency-Key": "b"})  # fmt: skip
    assert code(mismatch, 400) == "text.idempotency_key_mismatch"
    assert code(post("/v1/text/check", json=ok), 401) == "auth.missing_key"
    assert code(post("/v1/text/check", json=ok, headers=keys["auditor"]), 403) == "auth.forbidden"
