"""POST /v1/events over HTTP: JSON and multipart bodies, the Idempotency-Key header, error answers."""

from __future__ import annotations

import json

import pytest

from tests.media import jpeg

KNOWN = jpeg(7)


@pytest.fixture
def known_bank(client, keys):
    admin = keys["admin"]
    assert client.post("/v1/banks", json={"name": "known"}, headers=admin).status_code == 201
    r = client.post("/v1/banks/known/files", headers=admin, data={"category": "A2"}, files={"file": ("k.jpg", KNOWN)})
    assert r.status_code == 201, r.text


def post_event(client, headers, body, key="k1", file=None):
    headers = {**headers, "Idempotency-Key": key} if key else headers
    if file is None:
        return client.post("/v1/events", json=body, headers=headers)
    return client.post("/v1/events", data={"event": json.dumps(body)}, files={"file": file}, headers=headers)


def test_multipart_event_with_matching_file(client, keys, known_bank):
    body = {"type": "content", "content": {"id": "post-1"}, "account": {"id": "user-1"}}
    r = post_event(client, keys["platform"], body, file=("p.jpg", KNOWN, "image/jpeg"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] and not out["duplicate"] and out["scan"]["verdict"] == "match"
    assert out["cases"][0]["created"] and out["cases"][0]["band"] == "P1"
    case = client.get(f"/v1/cases/{out['cases'][0]['id']}", headers=keys["reviewer"]).json()
    assert case["content_id"] == "post-1" and case["account_id"] == "user-1" and case["category"] == "A2"
    assert case["items"][0]["has_media"] and case["items"][0]["filename"] == "p.jpg"
    again = post_event(client, keys["platform"], body, file=("p.jpg", KNOWN, "image/jpeg"))
    assert again.json() == {**out, "duplicate": True}


def test_json_event_and_errors(client, keys, known_bank):
    platform = keys["platform"]
    body = {"type": "account", "account": {"id": "u"}, "signals": [{"source": "user_report", "confidence": 0.4}]}
    r = post_event(client, platform, body)
    assert r.status_code == 200 and r.json()["scan"] is None and r.json()["cases"][0]["created"]
    assert post_event(client, platform, {**body, "account": {"id": "v"}}).status_code == 409

    for kwargs, status, code in [
        ({"body": body, "key": None}, 400, "event.missing_idempotency_key"),
        ({"body": {"type": "content"}}, 422, "request.invalid"),
        ({"body": [1, 2]}, 422, "request.invalid"),
        ({"body": body, "key": "f", "file": ("a.jpg", KNOWN)}, 400, "event.file_needs_content"),
    ]:
        r = post_event(client, platform, **kwargs)
        assert r.status_code == status and r.json()["error"]["code"] == code, (kwargs, r.text)
    r = client.post("/v1/events", content=b"{nope", headers={**platform, "Idempotency-Key": "j"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "request.invalid_json"
    r = client.post("/v1/events", data={"other": "x"}, files={"file": ("a.jpg", KNOWN)}, headers=platform)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request.missing_event"
    r = client.post("/v1/events", data={"event": "{"}, files={"file": ("a.jpg", KNOWN)}, headers=platform)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request.invalid_json"


def test_only_event_writers_may_send(client, keys):
    body = {"type": "account", "account": {"id": "u"}}
    assert post_event(client, keys["reviewer"], body).status_code == 403
    assert post_event(client, keys["admin"], body).status_code == 200
