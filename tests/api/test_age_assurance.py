"""The age-assurance callback: authenticated by the provider's HMAC signature (never an API key), replays
refused outside the window and harmless inside it, bodies bounded; the stand-in provider calls it end to end."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from safehold.safety.assurance import MAX_CALLBACK_BYTES, sign_callback
from safehold.safety.assurance_standin import StandIn, estimated_age

SECRET = "rehearsal-secret-0123456789"
URL = "/v1/age-assurance/standin/callback"
RESULT = {"account_id": "kid-9", "age": 14, "method": "estimation", "confidence": 0.9, "reference": "est-1"}


@pytest.fixture
def configured(svc):
    svc.settings.age_assurance = {"standin": {"type": "signed_webhook", "secret": SECRET, "window_seconds": 60}}
    return svc


def send(client, result=RESULT, secret=SECRET, timestamp=None, url=URL):
    body, headers = sign_callback(secret, result, timestamp)
    return client.post(url, content=body, headers=headers)


def test_a_signed_result_becomes_an_assurance_signal(client, configured):
    r = send(client)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["age"]["band"] == "13-15" and out["age"]["rule"] == "assurance"
    assert out["signal"] | {"source": "assurance", "provider": "standin", "method": "estimation"} == out["signal"]
    assert out["signal"]["actor"] == "assurance:standin"


def test_a_replay_within_the_window_changes_nothing(client, configured):
    body, headers = sign_callback(SECRET, RESULT)
    first = client.post(URL, content=body, headers=headers)
    again = client.post(URL, content=body, headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["signal"]["id"] == first.json()["signal"]["id"]
    assert len(configured.ages.signals("kid-9")) == 1


def test_an_old_signature_is_refused_as_expired(client, configured):
    r = send(client, timestamp=int(time.time()) - 120)
    assert r.status_code == 401 and r.json()["error"]["code"] == "age_assurance.expired"
    assert configured.ages.signals("kid-9") == []


@pytest.mark.parametrize("case", ["missing", "wrong secret", "tampered", "garbage"])
def test_a_bad_or_missing_signature_is_a_401(client, configured, case):
    body, headers = sign_callback(SECRET, RESULT)
    if case == "missing":
        headers.pop("Safehold-Signature")
    elif case == "wrong secret":
        body, headers = sign_callback("another-secret-0123456789", RESULT)
    elif case == "tampered":
        body = body.replace(b'"age":14', b'"age":40')
    else:
        headers["Safehold-Signature"] = "t=abc,v1="
    r = client.post(URL, content=body, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "age_assurance.bad_signature", r.text
    assert r.headers["www-authenticate"]


def test_a_signed_body_that_is_not_a_result_is_a_422(client, configured):
    r = send(client, {"account_id": "kid-9", "age": 14})
    assert r.status_code == 422 and r.json()["error"]["code"] == "age_assurance.invalid"
    body = b"not json"
    from safehold.actions.signing import sign

    r = client.post(URL, content=body, headers={"Safehold-Signature": sign(SECRET, body, int(time.time()))})
    assert r.status_code == 422 and r.json()["error"]["code"] == "age_assurance.invalid"


def test_an_unknown_provider_and_a_large_body(client, configured):
    r = send(client, url="/v1/age-assurance/nobody/callback")
    assert r.status_code == 404 and r.json()["error"]["code"] == "age_assurance.unknown_provider"
    big = {**RESULT, "pad": "x" * MAX_CALLBACK_BYTES}
    r = send(client, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"


def test_a_misconfigured_provider_says_so(client, svc):
    svc.settings.age_assurance = {"standin": {"type": "signed_webhook", "secret": "short"}}
    r = send(client)
    assert r.status_code == 500 and r.json()["error"]["code"] == "age_assurance.misconfigured"


def test_the_stand_in_estimates_and_calls_back(client, configured):
    def post(url, body, headers):
        r = client.post(url, content=body, headers=headers)
        return r.status_code, r.json()

    standin = StandIn(SECRET, URL, post=post)
    out = standin.estimate("kid-7", age=12)
    assert out["status"] == 200 and out["answer"]["age"]["band"] == "under13"
    base = standin.start()
    try:
        r = httpx.post(f"{base}/estimate", json={"account_id": "grown-up"}, timeout=10)
        assert r.status_code == 200 and r.json()["sent"]["age"] == estimated_age("grown-up")
        assert httpx.post(f"{base}/estimate", content=b"{}", timeout=10).status_code == 400
    finally:
        standin.stop()
    assert configured.ages.band("grown-up") != "unknown"
    assert json.dumps(standin.sent)  # what it sent is kept for a test to read


def test_a_misconfigured_provider_stops_the_start(settings):
    from safehold.errors import SafeholdError
    from safehold.services import Services

    settings.age_assurance = {"acme": {"type": "no_such_type"}}
    with pytest.raises(SafeholdError) as e:
        Services(settings)
    assert e.value.code == "age_assurance.misconfigured" and "no_such_type" in e.value.message


@pytest.mark.parametrize("change", [{"age": None}, {"band": "adult"}])
def test_a_result_gives_exactly_one_of_age_or_band(client, configured, change):
    result = {k: v for k, v in {**RESULT, **change}.items() if v is not None}
    r = send(client, result)
    assert r.status_code == 422 and r.json()["error"]["code"] == "age_assurance.invalid", r.text
