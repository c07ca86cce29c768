"""Evidence over the API: the register, decrypting with a purpose, legal holds, export packages, the purge."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest
from sqlalchemy import update

from safehold.store.models import EvidenceItem
from tests.reporting.helpers import confirmed_case

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _err(r, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


def _preserved(svc, seed: int = 1, **kw) -> tuple[int, dict, bytes]:
    """A confirmed case whose evidence is preserved (no report): (case id, evidence record, original bytes)."""
    case_id, item_id = confirmed_case(svc, seed, **kw)
    svc.evidence.preserve_case(case_id, "legal:lee")
    return case_id, svc.evidence.for_item(item_id), svc.vault.get(svc.cases.item(item_id)["sha256"])


def test_register_and_content(client, keys, svc):
    case_id, item, data = _preserved(svc)
    rows = client.get(f"/v1/evidence?case_id={case_id}", headers=keys["auditor"]).json()
    assert [(r["id"], r["sha256"]) for r in rows] == [(item["id"], hashlib.sha256(data).hexdigest())]
    assert client.get("/v1/evidence?case_id=999999", headers=keys["legal"]).json() == []
    assert _err(client.get("/v1/evidence", headers=keys["reviewer"]), 403) == "auth.forbidden"
    one = client.get(f"/v1/evidence/{item['id']}", headers=keys["senior_reviewer"]).json()
    assert one["retention"]["held"] is False and one["retention"]["expires_at"]
    assert _err(client.get("/v1/evidence/999999", headers=keys["legal"]), 404) == "evidence.not_found"

    url = f"/v1/evidence/{item['id']}/content"
    assert _err(client.get(f"{url}?purpose=look", headers=keys["auditor"]), 403) == "auth.forbidden"
    assert _err(client.get(url, headers=keys["legal"]), 422) == "request.invalid"  # a purpose is required
    r = client.get(f"{url}?purpose=subpoena 2026-117", headers=keys["legal"])
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "no-store" and "sandbox" in r.headers["content-security-policy"]
    assert r.headers["x-checksum-sha256"] == item["sha256"] and "attachment" in r.headers["content-disposition"]
    [access] = svc.audit.list(action="evidence.access")
    assert access["actor"] == "apikey:test-legal" and "subpoena 2026-117" in json.dumps(access["detail"])


def test_legal_holds(client, keys, svc):
    case_id, item, _ = _preserved(svc)
    for bad in ({"reason": "x"}, {"case_id": case_id, "account_id": "a", "reason": "x"}):
        r = client.post("/v1/evidence/holds", json=bad, headers=keys["legal"])
        assert _err(r, 422) == "request.invalid" and "exactly one of case_id or account_id" in r.text
    assert _err(client.post("/v1/evidence/holds", json={"case_id": case_id, "reason": " "}, headers=keys["legal"]), 422)
    body = {"case_id": case_id, "reason": "2703(f) request", "reference": "LE-1", "days": 90}
    assert _err(client.post("/v1/evidence/holds", json=body, headers=keys["senior_reviewer"]), 403) == (
        "auth.forbidden"
    )
    r = client.post("/v1/evidence/holds", json=body, headers=keys["legal"])
    assert r.status_code == 201, r.text
    hold = r.json()
    assert (hold["case_id"], hold["reference"], hold["placed_by"]) == (case_id, "LE-1", "apikey:test-legal")
    assert [h["id"] for h in client.get("/v1/evidence/holds", headers=keys["auditor"]).json()] == [hold["id"]]
    assert client.get(f"/v1/evidence/{item['id']}", headers=keys["legal"]).json()["retention"]["held"] is True
    account = client.post("/v1/evidence/holds", json={"account_id": "account-1", "reason": "r"}, headers=keys["admin"])
    assert account.status_code == 201 and account.json()["account_id"] == "account-1"

    release = f"/v1/evidence/holds/{hold['id']}/release"
    r = client.post(release, json={"note": "request withdrawn"}, headers=keys["legal"])
    assert r.status_code == 200 and r.json()["released_by"] == "apikey:test-legal"
    assert _err(client.post(release, headers=keys["legal"]), 409) == "evidence.hold_released"
    assert _err(client.post("/v1/evidence/holds/999999/release", headers=keys["legal"]), 404) == (
        "evidence.hold_not_found"
    )
    active = client.get("/v1/evidence/holds", headers=keys["legal"]).json()
    assert [h["id"] for h in active] == [account.json()["id"]]
    everything = client.get("/v1/evidence/holds?active_only=false", headers=keys["legal"]).json()
    assert len(everything) == 2


def test_export_package(client, keys, svc):
    case_id, item, data = _preserved(svc)
    for body in ({"reason": "x"}, {"case_id": case_id, "report_id": 1, "reason": "x"}):
        r = client.post("/v1/evidence/export", json=body, headers=keys["legal"])
        assert _err(r, 422) == "request.invalid" and "exactly one of case_id or report_id" in r.text
    assert _err(client.post("/v1/evidence/export", json={"case_id": case_id}, headers=keys["legal"]), 422) == (
        "request.invalid"
    )
    r = client.post("/v1/evidence/export", json={"case_id": case_id, "reason": "subpoena"}, headers=keys["legal"])
    assert r.status_code == 200 and r.headers["x-checksum-sha256"] == hashlib.sha256(r.content).hexdigest()
    package = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(package.read("manifest.json"))
    assert "case.json" in package.namelist() and json.dumps(manifest).count(item["sha256"]) >= 1
    [stored] = [n for n in package.namelist() if n.startswith("files/")]
    assert package.read(stored) == data
    assert list(svc.settings.exports_dir.iterdir()) == []
    [export] = svc.audit.list(action="evidence.export")
    assert r.headers["x-checksum-sha256"] in json.dumps(export["detail"])


def test_purge_needs_an_explicit_dry_run_flag_and_deletes_only_what_expired(client, keys, svc):
    _, old, _ = _preserved(svc, 1)
    _, kept, _ = _preserved(svc, 2, account_id="account-2")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=800)
    with svc.db.session() as s:
        s.execute(update(EvidenceItem).where(EvidenceItem.id == old["id"]).values(preserved_at=long_ago))
    assert _err(client.post("/v1/evidence/purge", headers=keys["legal"]), 422) == "request.invalid"
    assert _err(client.post("/v1/evidence/purge", json={}, headers=keys["legal"]), 422) == "request.invalid"
    assert _err(client.post("/v1/evidence/purge", json={"dry_run": "no"}, headers=keys["legal"]), 422) == (
        "request.invalid"
    )
    assert _err(client.post("/v1/evidence/purge", json={"dry_run": True}, headers=keys["auditor"]), 403) == (
        "auth.forbidden"
    )
    dry = client.post("/v1/evidence/purge", json={"dry_run": True}, headers=keys["legal"]).json()
    assert dry["purged"] == 1 and client.get(f"/v1/evidence/{old['id']}", headers=keys["legal"]).status_code == 200
    done = client.post("/v1/evidence/purge", json={"dry_run": False}, headers=keys["legal"]).json()
    assert done["purged"] == 1
    r = client.get(f"/v1/evidence/{old['id']}/content?purpose=check", headers=keys["legal"])
    assert _err(r, 410) == "evidence.purged"
    assert client.get(f"/v1/evidence/{kept['id']}/content?purpose=check", headers=keys["legal"]).status_code == 200
    assert [r["id"] for r in client.get("/v1/evidence", headers=keys["legal"]).json()] == [kept["id"]]
    purged = client.get("/v1/evidence?include_purged=true", headers=keys["legal"]).json()
    assert {r["id"] for r in purged} == {old["id"], kept["id"]}
