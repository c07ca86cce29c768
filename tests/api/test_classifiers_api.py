"""The classifiers API: the enabled classifiers with their policies, changing a policy (admins; audited), the
precision per threshold, and the scan and event doors' age signals."""

from __future__ import annotations

import json

import pytest

from safehold.config import Settings
from safehold.store.models import Conversation
from tests.classifiers.plugins import BRIGHT, install

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(tmp_path, database_url, monkeypatch):
    install(monkeypatch)
    return Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_explicit", "test_dark"])


def _err(r, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


def test_list_change_and_precision(client, keys):
    r = client.get("/v1/classifiers", headers=keys["auditor"])
    assert r.status_code == 200
    assert [c["name"] for c in r.json()["classifiers"]] == ["test_explicit", "test_dark"]
    explicit = r.json()["classifiers"][0]
    assert explicit["policy"]["needs_age_signal"] and explicit["set"] == {} and explicit["labels"] == ["explicit"]

    url = "/v1/classifiers/test_explicit/policy"
    assert _err(client.put(url, json={"threshold": 0.8}, headers=keys["reviewer"]), 403) == "auth.forbidden"
    r = client.put(url, json={"threshold": 0.8, "auto_action": True}, headers=keys["admin"])
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["threshold"] == 0.8 and r.json()["set"] == {"threshold": 0.8, "auto_action": True}
    assert r.json()["updated_by"] == "apikey:test-admin"
    r = client.put(url, json={"threshold": None}, headers=keys["admin"])
    assert r.json()["policy"]["threshold"] == 0.9 and r.json()["set"] == {"auto_action": True}
    for body in ({"threshold": 2}, {"alone": "sometimes"}, {"colour": "red"}, {"auto_action": "yes"}):
        assert _err(client.put(url, json=body, headers=keys["admin"]), 422) == "request.invalid", body
    assert _err(client.put(url, json={"category": "No Slug"}, headers=keys["admin"]), 422) == (
        "classifier.invalid_policy"
    )
    assert _err(client.put(url, json={}, headers=keys["admin"]), 422) == "classifier.invalid_policy"
    missing = client.put("/v1/classifiers/nudity/policy", json={"threshold": 0.5}, headers=keys["admin"])
    assert _err(missing, 404) == "classifier.not_found"

    r = client.get("/v1/classifiers/test_explicit/precision", headers=keys["auditor"])
    assert r.status_code == 200 and r.json()["labels"] == [] and r.json()["current_threshold"] == 0.9
    assert _err(client.get("/v1/classifiers/test_explicit/precision", headers=keys["platform"]), 403) == (
        "auth.forbidden"
    )


def test_the_scan_and_event_doors_take_age_signals(client, keys, svc):
    files = {"file": ("p.jpg", BRIGHT)}
    r = client.post("/v1/scan", files=files, data={"content_id": "c1"}, headers=keys["platform"])
    assert r.status_code == 200 and "cases" not in r.json()  # an explicit hit alone records nothing
    r = client.post("/v1/scan", files=files, data={"content_id": "c2", "depicted_minor": "true"},
                    headers=keys["platform"])  # fmt: skip
    assert r.status_code == 200, r.text
    [case] = r.json()["cases"]
    assert svc.cases.get(case["id"])["category"] == "csam"
    bad = client.post("/v1/scan", files=files, data={"content_id": "c3", "depicted_minor": "perhaps"},
                      headers=keys["platform"])  # fmt: skip
    assert _err(bad, 422) == "request.invalid"
    body = {"type": "content", "content": {"id": "c4"}, "grooming_conversation": "conv-9"}
    event = {"event": json.dumps(body)}
    headers = {**keys["platform"], "Idempotency-Key": "e1"}
    r = client.post("/v1/events", files={"file": ("p.jpg", BRIGHT)}, data=event, headers=headers)
    assert _err(r, 422) == "classifier.grooming_not_flagged"
    with svc.db.session() as s:
        s.add(Conversation(external_id="conv-9", alert=True))
    r = client.post("/v1/events", files={"file": ("p.jpg", BRIGHT)}, data=event, headers=headers)
    assert r.status_code == 200, r.text
    [case] = r.json()["cases"]
    [sig] = svc.cases.get(case["id"])["signals"]
    assert sig["detail"]["age"]["grooming_conversation"] == "conv-9" and sig["category"] == "csam"
    r = client.post("/v1/events", json={**body, "depicted_minor": "yes"}, headers={**headers, "Idempotency-Key": "e2"})
    assert _err(r, 422) == "request.invalid"
