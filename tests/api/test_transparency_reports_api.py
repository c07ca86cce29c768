"""The stored transparency reports over the API: generate (transparency.write), list, read, download the bytes as
published with their media type and filename, verify against the records."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.transparency.fakes import SAMPLE, FakeFacts

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
URL = "/v1/transparency/reports"


@pytest.fixture
def facts(svc):
    svc.transparency.facts = fake = FakeFacts({k: list(v) for k, v in SAMPLE.items()})
    return fake


def _err(r, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


def test_generate_list_get_download_verify(client, keys, facts):
    r = client.post(URL, json={"period": "2026-H1", "format": "json"}, headers=keys["legal"])
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["period"]["name"] == "2026-H1" and meta["created_by"] == "apikey:test-legal"
    assert meta["partial"] is False and "figures" not in meta

    listed = client.get(URL, headers=keys["auditor"]).json()
    assert listed["total"] == 1 and listed["reports"] == [meta]
    assert client.get(f"{URL}/{meta['id']}", headers=keys["auditor"]).json() == meta

    r = client.get(f"{URL}/{meta['id']}/content", headers=keys["senior_reviewer"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == f'attachment; filename="transparency-2026-H1-json-{meta["id"]}.json"'
    assert hashlib.sha256(r.content).hexdigest() == meta["content_sha256"] == r.headers["x-checksum-sha256"]
    assert json.loads(r.content)["figures"]["cases.backlog"]["rows"][0] == ["open", "high", "<10"]

    r = client.post(f"{URL}/{meta['id']}/verify", headers=keys["legal"])
    assert r.status_code == 200 and r.json()["figures"]["match"] and r.json()["rendering"]["reproduced"]
    facts.rows["cases.backlog"] = []
    r = client.post(f"{URL}/{meta['id']}/verify", headers=keys["legal"])
    assert not r.json()["figures"]["match"]
    assert [d["figure"] for d in r.json()["figures"]["differences"]] == ["cases.backlog"]


def test_pagination(client, keys, facts):
    ids = [
        client.post(URL, json={"period": p, "format": "json"}, headers=keys["admin"]).json()["id"]
        for p in ("2026-Q1", "2026-Q2")
    ]
    page = client.get(URL, params={"limit": 1, "offset": 1}, headers=keys["admin"]).json()
    assert page["total"] == 2 and [r["id"] for r in page["reports"]] == ids[:1]
    assert _err(client.get(URL, params={"limit": 501}, headers=keys["admin"]), 422) == "request.invalid"


def test_bounds(client, keys, facts):
    def post(body):
        return client.post(URL, json=body, headers=keys["admin"])

    assert _err(post({"period": "2026-H1", "format": "docx"}), 400) == "transparency.unknown_format"
    assert _err(post({"period": "2026-H3", "format": "json"}), 400) == "transparency.bad_period"
    assert _err(post({"period": "2999", "format": "json"}), 400) == "transparency.period_not_started"
    assert _err(post({"period": "2026-H1"}), 422) == "request.invalid"
    assert _err(post({"period": "x" * 65, "format": "json"}), 422) == "request.invalid"
    assert _err(post({"period": "2026", "format": "json", "extra": 1}), 422) == "request.invalid"
    assert (
        _err(client.post(URL, json={"period": "2026-H1", "format": "json"}, headers=keys["auditor"]), 403)
        == "auth.forbidden"
    )
    for path in (f"{URL}/42", f"{URL}/42/content"):
        assert _err(client.get(path, headers=keys["admin"]), 404) == "transparency.report_not_found"
    assert _err(client.post(f"{URL}/42/verify", headers=keys["admin"]), 404) == "transparency.report_not_found"
    # verify recomputes and re-renders, as costly as generating: staff who only read may not trigger it
    assert _err(client.post(f"{URL}/42/verify", headers=keys["auditor"]), 403) == "auth.forbidden"
    assert _err(client.get(f"{URL}/0", headers=keys["admin"]), 422) == "request.invalid"
