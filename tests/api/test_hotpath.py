"""The search guard's hot path answers ordinary requests exactly as the route would, and hands everything else —
refusals, bad bodies, other methods — to the FastAPI route, whose errors and audit records stay the only ones."""

from __future__ import annotations

import pytest

from safehold.api.limits import HOT_MAX_BODY

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
def test_an_ordinary_check_is_the_services_answer(client, keys, svc):
    body = {"query": "PTHC videos", "locale": "pt-BR", "bucket": "s1"}
    r = client.post("/v1/search/check", json=body, headers=keys["platform"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.json() == svc.terms.current().guard.check("PTHC videos", "pt-BR", bucket="s1").to_dict()
    f = client.post("/v1/search/suggestions/filter", json={"suggestions": ["pizza", "pthc"]}, headers=keys["platform"])
    assert f.json() == {"suggestions": ["pizza"], "removed": {"csam": 1}}
    svc.search.flush_counts()
    kinds = {(r["kind"], r["action"]) for r in svc.search.stats()}
    assert ("check", "block") in kinds and ("suggestion", "remove") in kinds  # counted on the hot path too


@sqlite_only
def test_everything_else_goes_to_the_route(client, keys, svc):
    def code(r, status):
        assert r.status_code == status, r.text
        return r.json()["error"]["code"]

    url, ok = "/v1/search/check", {"query": "weather"}
    assert code(client.post(url, json=ok), 401) == "auth.missing_key"
    assert code(client.post(url, json=ok, headers={"Authorization": "Bearer sh_bad_key"}), 401) == "auth.invalid_key"
    assert code(client.post(url, json=ok, headers=keys["auditor"]), 403) == "auth.forbidden"
    assert any(rec["action"] == "auth.denied" for rec in svc.audit.list(action="auth."))
    platform = keys["platform"]
    assert code(client.post(url, content=b"{not json", headers=platform), 422) == "request.invalid"
    assert code(client.post(url, json={**ok, "extra": 1}, headers=platform), 422) == "request.invalid"
    assert code(client.post(url, json={"query": "x" * (HOT_MAX_BODY + 10)}, headers=platform), 422) == "request.invalid"
    assert code(client.get(url, headers=platform), 405) == "request.method_not_allowed"
    assert client.post(url, json=ok, headers=platform).json()["action"] == "allow"  # and the key still works
