"""Cases over HTTP: scans that open cases (per bank on_match), queues, claims, the SLA setting."""

from __future__ import annotations

import hashlib

import pytest

from safehold.errors import SafeholdError
from tests.media import jpeg, variant

KNOWN = jpeg(7)


@pytest.fixture
def known_bank(client, keys):
    admin = keys["admin"]
    r = client.post("/v1/banks", json={"name": "known"}, headers=admin)
    assert r.status_code == 201 and r.json()["on_match"] == "case"
    r = client.post("/v1/banks/known/files", headers=admin, data={"category": "A1"}, files={"file": ("k.jpg", KNOWN)})
    assert r.status_code == 201, r.text
    return r.json()["entries"]


def scan(client, headers, data, **fields):
    r = client.post("/v1/scan", headers=headers, data=fields, files={"file": ("u.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    return r.json()


def test_scan_opens_a_case_per_subject(client, keys, known_bank, svc):
    platform = keys["platform"]
    out = scan(client, platform, variant(KNOWN), content_id="img-1", account_id="acc-1")
    assert out["verdict"] == "match" and out["cases"][0]["created"] and out["duplicate"] is False
    case_id = out["cases"][0]["id"]
    again = scan(client, platform, KNOWN, content_id="img-1")
    assert again["cases"] == [{"id": case_id, "created": False, "status": "open", "band": "P1"}]
    assert "cases" not in scan(client, platform, jpeg(400), content_id="img-2")

    pdq = next(e for e in known_bank if e["signal_type"] == "pdq")
    r = client.post("/v1/scan", headers=platform, json={"signal_type": "pdq", "value": pdq["value"], "content_id": "h"})
    raw = r.json()["cases"][0]
    assert raw["created"] and svc.cases.get(raw["id"])["items"][0]["has_media"] is False

    r = client.post("/v1/scan", headers=platform, data={"content_id": "x" * 129}, files={"file": ("u.jpg", KNOWN)})
    assert r.status_code == 422


def test_a_scan_without_a_subject_is_a_lookup(client, keys, known_bank, svc):
    """A bare hash, a URL or a file scanned without content_id/account_id answers its verdict and opens no case
    (it used to open a P1 case with no content id and no account: nothing anyone could act on)."""
    platform = keys["platform"]
    md5 = next(e for e in known_bank if e["signal_type"] == "md5")["value"]
    bare = client.post("/v1/scan", headers=platform, json={"signal_type": "md5", "value": md5}).json()
    assert bare["verdict"] == "match" and "cases" not in bare and "duplicate" not in bare
    assert scan(client, platform, KNOWN)["verdict"] == "match"
    batch = client.post(
        "/v1/scan/batch",
        headers=platform,
        json={"items": [{"signal_type": "md5", "value": md5}, {"signal_type": "md5", "value": md5, "content_id": "b"}]},
    ).json()["results"]
    assert "cases" not in batch[0] and batch[1]["cases"][0]["created"]
    files = client.post("/v1/scan/batch", headers=platform, files=[("files", ("a.jpg", KNOWN))]).json()["results"]
    assert files[0]["verdict"] == "match" and "cases" not in files[0]
    assert svc.cases.list()["total"] == 1
    with pytest.raises(SafeholdError):  # an anonymous file is not kept either
        svc.vault.get(hashlib.sha256(KNOWN).hexdigest())


def test_a_retried_scan_answers_what_the_first_one_did(client, keys, known_bank, svc):
    platform = keys["platform"]
    first = scan(client, platform, KNOWN, content_id="img-1", account_id="acc-1")
    retry = scan(client, platform, KNOWN, content_id="img-1", account_id="acc-1")
    assert first["duplicate"] is False and retry["duplicate"] is True
    assert retry["cases"] == first["cases"] and first["cases"][0]["created"] is True
    assert len(svc.cases.get(first["cases"][0]["id"])["signals"]) == 2  # pdq and md5 once, not twice
    # The same content under another id is another subject; another caller's scan is its own.
    assert scan(client, platform, KNOWN, content_id="img-2")["cases"][0]["created"] is True
    assert scan(client, keys["admin"], KNOWN, content_id="img-1", account_id="acc-1")["duplicate"] is False


def test_bank_on_match_settings(client, keys, known_bank):
    admin, platform = keys["admin"], keys["platform"]
    r = client.post("/v1/banks", json={"name": "fp", "kind": "allow"}, headers=admin)
    assert r.json()["on_match"] == "none"
    r = client.post("/v1/banks", json={"name": "fp2", "kind": "allow", "on_match": "case"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    assert "an allow bank never opens cases" in r.json()["error"]["message"]
    r = client.post("/v1/banks", json={"name": "x", "on_match": "sometimes"}, headers=admin)
    assert r.status_code == 422
    # The same on_match is fine on a block bank: sent alone to an allow bank, it is the bank's state that refuses.
    r = client.patch("/v1/banks/fp", json={"on_match": "case"}, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "bank.allow_on_match"
    assert client.patch("/v1/banks/fp", json={"kind": "block"}, headers=admin).json()["on_match"] == "case"
    assert client.patch("/v1/banks/fp", json={"kind": "allow"}, headers=admin).json()["on_match"] == "none"
    assert client.patch("/v1/banks/known", json={"on_match": "none"}, headers=admin).json()["on_match"] == "none"
    assert "cases" not in scan(client, platform, KNOWN, content_id="c")
    assert client.patch("/v1/banks/known", json={"on_match": "auto"}, headers=admin).json()["on_match"] == "auto"
    assert client.get("/v1/banks/known", headers=admin).json()["on_match"] == "auto"


def test_case_routes_and_claims(client, keys, known_bank):
    reviewer, senior = keys["reviewer"], keys["senior_reviewer"]
    case_id = scan(client, keys["platform"], KNOWN, content_id="c1", account_id="a")["cases"][0]["id"]
    scan(client, keys["platform"], variant(KNOWN), content_id="c2", account_id="a")

    page = client.get("/v1/cases?queue=media&limit=1", headers=keys["auditor"]).json()
    assert page["total"] == 2 and len(page["cases"]) == 1
    assert client.get("/v1/cases?status=bogus", headers=reviewer).json()["error"]["code"] == "request.invalid"
    counts = client.get("/v1/cases/counts", headers=reviewer).json()
    assert counts["by_queue"]["media"] == 2 and counts["by_band"]["P1"] == 2
    case = client.get(f"/v1/cases/{case_id}", headers=reviewer).json()
    assert len(case["related"]) == 1 and case["history"][0]["action"] == "case.open"
    assert client.get("/v1/cases/999", headers=reviewer).status_code == 404

    r = client.post(f"/v1/cases/{case_id}/claim", headers=reviewer)
    assert r.status_code == 200 and r.json()["claimed_by"] == "apikey:test-reviewer"
    r = client.post(f"/v1/cases/{case_id}/claim", headers=senior)
    assert r.status_code == 409 and r.json()["error"]["code"] == "case.claimed"
    r = client.post(f"/v1/cases/{case_id}/release", headers=reviewer, json={"override": True})
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.forbidden"
    r = client.post(f"/v1/cases/{case_id}/claim", headers=senior, json={"override": True})
    assert r.status_code == 200 and r.json()["claimed_by"] == "apikey:test-senior_reviewer"
    r = client.post(f"/v1/cases/{case_id}/release", headers=senior)
    assert r.status_code == 200 and r.json()["claimed_by"] is None
    assert client.get("/v1/cases?claimed_by=apikey:test-reviewer", headers=reviewer).json()["total"] == 0


def test_sla_setting(client, keys):
    assert client.get("/v1/settings/sla", headers=keys["auditor"]).json() == {
        "P0": 1,
        "P1": 4,
        "P2": 24,
        "P3": 72,
        "P4": 168,
    }
    assert client.put("/v1/settings/sla", json={"P1": 2}, headers=keys["senior_reviewer"]).status_code == 403
    r = client.put("/v1/settings/sla", json={"P1": 2, "P4": 100}, headers=keys["admin"])
    assert r.status_code == 200 and r.json() == {"P0": 1, "P1": 2, "P2": 24, "P3": 72, "P4": 100}
    for bad in ({"P1": -1}, {"P1": 8761}, {"P7": 1}, {"P1": "soon"}, {"P1": True}, {"P1": None}):
        r = client.put("/v1/settings/sla", json=bad, headers=keys["admin"])
        assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", bad
    r = client.put("/v1/settings/sla", json={}, headers=keys["admin"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "settings.invalid_sla"
    assert client.get("/v1/settings/sla", headers=keys["reviewer"]).json()["P1"] == 2
