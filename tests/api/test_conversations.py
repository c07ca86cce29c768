"""`/v1/conversations` over HTTP: streaming messages, reading and forgetting conversations, roles, 422s.

Synthetic, non-explicit messages with cue phrases from the bundled grooming list.
"""

from __future__ import annotations

import json

MESSAGES = [
    {"id": "m1", "author": "helper", "text": "wow you are so mature for your age"},
    {"id": "m2", "author": "kid", "text": "lol thanks"},
    {"id": "m3", "author": "helper", "text": "are you home alone right now?"},
    {"id": "m4", "author": "helper", "text": "don't tell your parents we talk ok"},
]
URL = "/v1/conversations/chat-1/messages"


def test_stream_read_list_and_forget(client, keys):
    platform, reviewer = keys["platform"], keys["reviewer"]
    r = client.post(URL, json=MESSAGES[0], headers=platform)  # one message at the top level
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["conversation_id"] == "chat-1" and first["accepted"] == 1 and first["duplicates"] == 0
    assert first["assessment"]["alert"] is False and first["case"] is None

    body = {"messages": MESSAGES, "participants": {"kid": {"age": 12}}}
    out = client.post(URL, json=body, headers=platform).json()
    assert out["accepted"] == 3 and out["duplicates"] == 1
    a = out["assessment"]
    assert a["alert"] and a["level"] == "high" and a["risk_author"] == "helper" and a["at_risk_author"] == "kid"
    assert set(a) == {
        "score", "level", "alert", "risk_author", "at_risk_author", "participants", "stages", "explanation", "messages"
    }  # fmt: skip
    assert out["case"]["created"] is True and out["case"]["status"] == "open"

    again = client.post(URL, json=body, headers=platform).json()
    assert again["accepted"] == 0 and again["duplicates"] == 4 and again["assessment"] == a
    assert again["case"] == {**out["case"], "created": False}

    case = client.get(f"/v1/cases/{out['case']['id']}", headers=reviewer).json()
    assert case["queue"] == "text" and case["source"] == "grooming" and case["content_id"] == "conversation:chat-1"

    got = client.get("/v1/conversations/chat-1", headers=reviewer)
    assert got.status_code == 200 and got.json()["assessment"] == a and got.json()["case"]["id"] == case["id"]
    listed = client.get("/v1/conversations", params={"alert": "true", "min_score": 0.5}, headers=keys["auditor"])
    assert [c["conversation_id"] for c in listed.json()["conversations"]] == ["chat-1"]
    assert client.get("/v1/conversations", params={"alert": "false"}, headers=reviewer).json()["conversations"] == []

    gone = client.delete("/v1/conversations/chat-1", headers=platform)
    assert gone.status_code == 200 and gone.json()["forgotten"] is True
    missing = client.get("/v1/conversations/chat-1", headers=reviewer)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "conversation.not_found"
    assert client.delete("/v1/conversations/chat-1", headers=platform).status_code == 404


def test_roles(client, keys):
    assert client.post(URL, json=MESSAGES[0], headers=keys["admin"]).status_code == 200
    for role in ("reviewer", "senior_reviewer", "auditor", "legal"):
        r = client.post(URL, json=MESSAGES[0], headers=keys[role])
        assert r.status_code == 403 and r.json()["error"]["code"] == "auth.forbidden", role
        assert client.delete("/v1/conversations/chat-1", headers=keys[role]).status_code == 403, role
        assert client.get("/v1/conversations/chat-1", headers=keys[role]).status_code == 200, role
    # The platform writes conversations but does not read reviewers' assessments back.
    assert client.get("/v1/conversations/chat-1", headers=keys["platform"]).status_code == 403
    assert client.get("/v1/conversations", headers=keys["platform"]).status_code == 403
    assert client.post(URL, json=MESSAGES[0]).status_code == 401


def test_invalid_requests_answer_422_with_a_stable_code(client, keys):
    platform = keys["platform"]

    def code(body=None, url=URL, content=None):
        if content is not None:
            r = client.post(url, content=content, headers={**platform, "Content-Type": "application/json"})
        else:
            r = client.post(url, json=body, headers=platform)
        assert r.status_code == 422, r.text
        return r.json()["error"]

    err = code({"messages": [{"author": "a", "text": "hi"}]})
    assert err["code"] == "request.invalid" and err["detail"]["errors"][0]["loc"] == ["messages", 0, "id"]
    assert code({"id": "m1", "author": "a", "text": "x" * 100_001})["code"] == "conversation.text_too_long"
    assert code({"id": "m1", "author": "a", "text": "hi", "extra": 1})["code"] == "request.invalid"
    assert code({"messages": [MESSAGES[0]] * 101})["code"] == "request.invalid"
    assert code([MESSAGES[0]])["code"] == "request.invalid"  # not an object
    assert code(MESSAGES[0], url=f"/v1/conversations/{'c' * 129}/messages")["code"] == "request.invalid"
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"min_score": 2}):
        r = client.get("/v1/conversations", params=params, headers=keys["reviewer"])
        assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", params
    assert client.get("/v1/conversations", headers=keys["reviewer"]).json() == {"conversations": []}


def test_openapi_documents_the_message_body(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    many, one = post["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert "messages" in many["properties"] and "participants" in many["properties"]
    assert {"id", "author", "text", "participants"} <= set(one["properties"])  # one message at the top level
    assert "$ref" not in json.dumps(post["requestBody"])  # written in place: no "#/$defs/…" outside its schema
