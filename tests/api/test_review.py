"""The review API: decisions and confirmations, media answers and their headers, wellness, banking."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.review.helpers import media_case

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _err(r, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


def test_decision_and_confirmation(client, keys, svc):
    case_id, _ = media_case(svc)
    url = f"/v1/cases/{case_id}"
    assert _err(client.post(f"{url}/decision", json={"decision": "escalate"}, headers=keys["reviewer"]), 409) == (
        "case.not_claimed"
    )
    svc.cases.claim(case_id, "apikey:test-reviewer")
    for body in ({"decision": "csam"}, {"decision": "cse", "classification": "A1"}, {"decision": "maybe"}):
        bad = client.post(f"{url}/decision", json=body, headers=keys["reviewer"])
        assert _err(bad, 422) == "request.invalid", body
    bad = client.post(
        f"{url}/decision", json={"decision": "escalate", "classification": "A1"}, headers=keys["reviewer"]
    )
    assert _err(bad, 422) == "request.invalid"
    r = client.post(f"{url}/decision", json={"decision": "csam", "classification": "A1"}, headers=keys["reviewer"])
    assert r.status_code == 200 and r.json()["status"] == "awaiting_confirmation"
    same = client.post(f"{url}/confirmation", json={"agree": True}, headers=keys["reviewer"])
    assert _err(same, 409) == "review.same_reviewer"
    r = client.post(f"{url}/confirmation", json={"agree": True, "note": "agreed"}, headers=keys["senior_reviewer"])
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "closed" and body["confirmed_by"] == "apikey:test-senior_reviewer"


def test_media_answers(client, keys, svc):
    case_id, item_id = media_case(svc)
    r = client.get(f"/v1/items/{item_id}/preview", headers=keys["auditor"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "no-store" and Image.open(io.BytesIO(r.content)).mode == "L"
    assert _err(client.get(f"/v1/items/{item_id}/media", headers=keys["auditor"]), 403) == "auth.forbidden"
    r = client.get(f"/v1/items/{item_id}/media", headers=keys["reviewer"])
    assert r.status_code == 200 and r.content == svc.vault.get(svc.cases.item(item_id)["sha256"])
    assert r.headers["content-type"] == "image/jpeg" and r.headers["cache-control"] == "no-store"
    assert "sandbox" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
    r = client.get(f"/v1/items/{item_id}/reveals", headers=keys["auditor"])
    assert [x["actor"] for x in r.json()["reveals"]] == ["apikey:test-reviewer"]
    assert r.json()["item_id"] == item_id
    r = client.get(f"/v1/items/{item_id}/exif", headers=keys["reviewer"])
    assert r.status_code == 200 and r.json()["media"] == "image" and r.json()["width"] == 640
    assert _err(client.get("/v1/items/999999/reveals", headers=keys["auditor"]), 404) == "case.item_not_found"


def test_wellness_and_the_cap(client, keys, svc):
    _, item_id = media_case(svc)
    r = client.get("/v1/wellness", headers=keys["reviewer"])
    assert r.status_code == 200
    assert r.json()["settings"]["blur"] is True and r.json()["exposure"]["today"] == 0
    for body in ({"daily_cap": 0}, {"daily_cap": True}, {"blur": None}, {}):
        bad = client.put("/v1/wellness/defaults", json=body, headers=keys["admin"])
        assert _err(bad, 422) == "request.invalid", body
    assert _err(client.put("/v1/wellness/defaults", json={"shiny": 1}, headers=keys["admin"]), 422) == "request.invalid"
    r = client.put("/v1/wellness/defaults", json={"daily_cap": 1}, headers=keys["admin"])
    assert r.status_code == 200 and r.json()["daily_cap"] == 1
    assert client.get(f"/v1/items/{item_id}/media", headers=keys["reviewer"]).status_code == 200
    r = client.get(f"/v1/items/{item_id}/media", headers=keys["reviewer"])
    assert _err(r, 429) == "review.exposure_cap" and r.json()["error"]["detail"] == {"today": 1, "cap": 1}
    exposure = client.get("/v1/wellness", headers=keys["reviewer"]).json()["exposure"]
    assert exposure == {"today": 1, "cap": 1, "remaining": 0, "since_break": 1, "break_due": False}


def test_add_to_bank(client, keys, svc):
    svc.banks.create("own", kind="block")
    case_id, item_id = media_case(svc, known=True)
    svc.cases.claim(case_id, "apikey:test-reviewer")
    body = {"decision": "csam", "classification": "B2"}
    assert (
        client.post(f"/v1/cases/{case_id}/decision", json=body, headers=keys["reviewer"]).json()["status"] == "closed"
    )
    r = client.post(f"/v1/cases/{case_id}/bank", json={"item_id": item_id, "bank": "own"}, headers=keys["reviewer"])
    assert _err(r, 403) == "auth.forbidden"
    r = client.post(
        f"/v1/cases/{case_id}/bank", json={"item_id": item_id, "bank": "own"}, headers=keys["senior_reviewer"]
    )
    assert r.status_code == 200 and r.json()["added"] >= 2 and r.json()["entries"][0]["category"] == "B2"
