"""Age signals over the API: recording (validated, idempotent by reference), a reviewer finding only from staff
who may review, an account's band with its signals, the listing by band."""

from __future__ import annotations

import pytest


def post(client, keys, account, body, role="platform"):
    return client.post(f"/v1/accounts/{account}/age-signals", json=body, headers=keys[role])


def test_a_declared_birth_date_resolves_the_band(client, keys):
    r = post(client, keys, "kid-1", {"source": "declared", "birth_date": "2013-01-01", "confidence": 0.9})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["duplicate"] is False and out["signal"]["source"] == "declared" and out["age"]["minor"] is True
    assert out["signal"]["actor"] == "apikey:test-platform"
    shown = client.get("/v1/accounts/kid-1/age", headers=keys["auditor"]).json()
    assert shown["band"] == out["age"]["band"] and shown["rule"] == "protective"
    assert shown["signal"]["id"] == out["signal"]["id"] and len(shown["signals"]) == 1


def test_a_repeated_reference_is_a_200_retry(client, keys):
    body = {"source": "assurance", "age": 30, "method": "verification", "provider": "acme", "reference": "r-1"}
    first = post(client, keys, "a", body)
    again = post(client, keys, "a", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True and again.json()["signal"]["id"] == first.json()["signal"]["id"]


def test_a_reviewer_finding_needs_cases_review(client, keys):
    r = post(client, keys, "a", {"source": "reviewer", "band": "16-17"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "age.reviewer_only"
    r = post(client, keys, "a", {"source": "reviewer", "band": "16-17"}, role="reviewer")
    assert r.status_code == 201 and r.json()["age"]["rule"] == "reviewer"
    assert r.json()["signal"]["actor"] == "apikey:test-reviewer"


@pytest.mark.parametrize(
    "body",
    [
        {"source": "chat", "age": 13},  # chat is Safehold's own
        {"source": "declared"},  # says nothing
        {"source": "declared", "age": 13, "band": "13-15"},  # two at once
        {"source": "declared", "age": 200},
        {"source": "declared", "band": "teen"},
        {"source": "declared", "band": "adult", "confidence": 2},
        {"source": "declared", "band": "adult", "reference": "x" * 201},
        {"source": "declared", "band": "adult", "extra": 1},
    ],
)
def test_a_malformed_signal_is_a_422(client, keys, body):
    r = post(client, keys, "a", body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", r.text


def test_a_future_birth_date_is_age_invalid(client, keys):
    r = post(client, keys, "a", {"source": "declared", "birth_date": "2999-01-01"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "age.invalid"


def test_an_unknown_account_is_unknown_by_rule_none(client, keys):
    out = client.get("/v1/accounts/nobody/age", headers=keys["platform"]).json()
    assert (out["band"], out["rule"], out["signal"], out["signals"]) == ("unknown", "none", None, [])


def test_the_listing_filters_by_band_and_pages(client, keys):
    for i in range(3):
        post(client, keys, f"kid{i}", {"source": "platform", "band": "13-15"})
    post(client, keys, "grown", {"source": "platform", "band": "adult"})
    page = client.get("/v1/accounts/ages?band=13-15&limit=2", headers=keys["admin"]).json()
    assert page["total"] == 3 and len(page["accounts"]) == 2 and page["limit"] == 2
    rest = client.get("/v1/accounts/ages?band=13-15&limit=2&offset=2", headers=keys["admin"]).json()
    assert {a["account_id"] for a in page["accounts"] + rest["accounts"]} == {"kid0", "kid1", "kid2"}
    r = client.get("/v1/accounts/ages?band=teen", headers=keys["admin"])
    assert r.status_code == 422


def test_an_account_id_may_hold_a_slash(client, keys):
    r = post(client, keys, "tenant/42", {"source": "platform", "band": "16-17"})
    assert r.status_code == 201 and r.json()["age"]["account_id"] == "tenant/42"
    assert client.get("/v1/accounts/tenant/42/age", headers=keys["platform"]).json()["band"] == "16-17"


def test_assurance_sent_with_an_api_key_is_recorded_as_platform(client, keys):
    """Only the provider's signed callback proves an assurance result: a key's "assurance" cannot switch a child's
    protections off."""
    assert post(client, keys, "kid", {"source": "declared", "age": 12}).status_code == 201
    r = post(client, keys, "kid", {"source": "assurance", "age": 30, "method": "verification", "provider": "acme"})
    assert r.status_code == 201 and r.json()["signal"]["source"] == "platform"
    assert r.json()["signal"]["method"] == "verification" and r.json()["signal"]["provider"] == "acme"
    assert r.json()["age"]["band"] == "under13" and r.json()["age"]["rule"] == "protective"
    assert r.json()["age"]["sender_band"] == "adult" and r.json()["age"]["age_conflict"] is True
