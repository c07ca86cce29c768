"""Reports over the API: draft from a confirmed case, edit, read the XML, submit to the stand-in, retract, export."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from tests.reporting.helpers import confirmed_case
from tests.review.helpers import media_case

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _err(r, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


def _draft(client, keys, case_id: int, **body) -> dict:
    r = client.post("/v1/reports", json={"case_id": case_id, **body}, headers=keys["legal"])
    assert r.status_code == 201, r.text
    return r.json()


def test_draft_read_and_edit(client, keys, svc, cybertip):
    case_id, item_id = confirmed_case(svc)
    assert _err(client.post("/v1/reports", json={"case_id": case_id}, headers=keys["reviewer"]), 403) == (
        "auth.forbidden"
    )
    report = _draft(client, keys, case_id)
    assert report["status"] == "draft" and [c["id"] for c in report["cases"]] == [case_id]
    assert _draft(client, keys, case_id)["id"] == report["id"]  # idempotent
    rid, [file] = report["id"], report["files"]
    assert file["viewed_by_esp"] is False  # a hash match nobody opened is reported as not viewed

    open_case, _ = media_case(svc, 7)
    assert _err(client.post("/v1/reports", json={"case_id": open_case}, headers=keys["legal"]), 409) == (
        "report.not_confirmed"
    )
    bad = client.post("/v1/reports", json={"case_id": case_id, "authority": "fbi"}, headers=keys["legal"])
    assert _err(bad, 422) == "request.invalid"
    assert _err(client.post("/v1/reports", json={"case": 1}, headers=keys["legal"]), 422) == "request.invalid"

    # a reveal through the API is what makes the file "viewed" (US v. Wilson)
    assert client.get(f"/v1/items/{item_id}/media", headers=keys["reviewer"]).status_code == 200
    seen = client.get(f"/v1/reports/{rid}", headers=keys["reviewer"]).json()["files"][0]
    assert seen["viewed_by_esp"] is True and [v["actor"] for v in seen["viewed"]["reveals"]] == ["apikey:test-reviewer"]

    listed = client.get("/v1/reports?status=draft", headers=keys["auditor"]).json()
    assert [(r["id"], r["case_ids"], r["file_count"]) for r in listed] == [(rid, [case_id], 1)]
    assert client.get(f"/v1/reports?case_id={case_id}", headers=keys["reviewer"]).json()[0]["id"] == rid
    assert _err(client.get("/v1/reports?status=sent", headers=keys["legal"]), 422) == "request.invalid"
    assert _err(client.get("/v1/reports/999999", headers=keys["legal"]), 404) == "report.not_found"

    url = f"/v1/reports/{rid}"
    assert _err(client.patch(url, json={"incident_type": "Spam"}, headers=keys["legal"]), 400) == (
        "report.invalid_field"
    )
    assert _err(client.patch(url, json={"colour": "red"}, headers=keys["legal"]), 422) == "request.invalid"
    assert _err(client.patch(url, json={"additional_info": "x"}, headers=keys["reviewer"]), 403) == "auth.forbidden"
    changes = {
        "annotations": ["sextortion"],
        "escalate_to_high_priority": "The child is in contact with the account now.",
        "files": {str(file["id"]): {"annotations": ["generativeAi"], "publicly_available": False}},
    }
    edited = client.patch(url, json=changes, headers=keys["legal"]).json()
    assert edited["fields"]["annotations"] == ["sextortion"]
    assert edited["fields"]["escalate_to_high_priority"].startswith("The child")
    assert edited["files"][0]["fields"] == {"annotations": ["generativeAi"], "publicly_available": False}
    cleared = client.patch(url, json={"escalate_to_high_priority": None}, headers=keys["senior_reviewer"]).json()
    assert cleared["fields"]["escalate_to_high_priority"] is None and cleared["fields"]["annotations"] == ["sextortion"]

    doc = client.get(f"{url}/document", headers=keys["reviewer"])
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/xml")
    assert doc.headers["cache-control"] == "no-store"
    assert b"<report" in doc.content and b"<sextortion>true</sextortion>" in doc.content


def test_submit_through_the_api_to_the_stand_in(client, keys, svc, cybertip):
    rid = _draft(client, keys, confirmed_case(svc)[0])["id"]
    assert client.get("/v1/cybertipline/status", headers=keys["legal"]).json()["ok"] is True
    assert _err(client.post(f"/v1/reports/{rid}/submit", headers=keys["reviewer"]), 403) == "auth.forbidden"
    r = client.post(f"/v1/reports/{rid}/submit?wait=true", headers=keys["legal"])
    assert r.status_code == 200, r.text
    filed = r.json()
    assert filed["status"] == "finished" and filed["environment"] == "test"
    assert cybertip.reports[filed["external_id"]].finished and len(cybertip.reports[filed["external_id"]].files) == 1
    status = client.get(f"/v1/reports/{rid}/status", headers=keys["auditor"]).json()
    assert (status["status"], status["external_id"], status["last_error"]) == ("finished", filed["external_id"], None)
    assert status["files"][0]["file_id"] and status["files"][0]["described_at"] and "fields" not in status
    assert _err(client.post(f"/v1/reports/{rid}/retract", json={"reason": "x"}, headers=keys["legal"]), 409) == (
        "report.finished"
    )
    assert _err(client.patch(f"/v1/reports/{rid}", json={"additional_info": "x"}, headers=keys["legal"]), 409) == (
        "report.not_editable"
    )

    queued = _draft(client, keys, confirmed_case(svc, 2, account_id="account-2")[0])["id"]
    r = client.post(f"/v1/reports/{queued}/submit", headers=keys["senior_reviewer"])
    assert r.status_code == 202 and r.json()["status"] == "submitted"


def test_submitting_needs_credentials(client, keys, svc):
    rid = _draft(client, keys, confirmed_case(svc)[0])["id"]
    assert _err(client.post(f"/v1/reports/{rid}/submit", headers=keys["legal"]), 409) == "cybertip.not_configured"
    assert _err(client.get("/v1/cybertipline/status", headers=keys["admin"]), 409) == "cybertip.not_configured"
    assert client.get(f"/v1/reports/{rid}", headers=keys["legal"]).json()["status"] == "draft"


def test_retract_and_record_a_report_filed_by_hand(client, keys, svc):
    case_id = confirmed_case(svc)[0]
    ncmec = _draft(client, keys, case_id)["id"]
    nca = _draft(client, keys, case_id, authority="nca")["id"]
    assert nca != ncmec
    assert _err(client.post(f"/v1/reports/{ncmec}/retract", json={}, headers=keys["legal"]), 422) == "request.invalid"
    r = client.post(f"/v1/reports/{ncmec}/retract", json={"reason": "filed elsewhere"}, headers=keys["legal"])
    assert r.status_code == 200 and r.json()["status"] == "retracted"
    assert _err(client.post(f"/v1/reports/{ncmec}/filed", json={"external_id": "X"}, headers=keys["legal"]), 409) == (
        "report.files_by_api"
    )
    r = client.post(f"/v1/reports/{nca}/filed", json={"external_id": "NCA-2026-1"}, headers=keys["legal"])
    assert r.status_code == 200 and (r.json()["status"], r.json()["external_id"]) == ("finished", "NCA-2026-1")


def test_export_is_a_checksummed_zip_that_leaves_no_copy(client, keys, svc):
    rid = _draft(client, keys, confirmed_case(svc)[0], authority="nca")["id"]
    assert _err(client.post(f"/v1/reports/{rid}/export", headers=keys["senior_reviewer"]), 403) == "auth.forbidden"
    r = client.post(f"/v1/reports/{rid}/export", headers=keys["legal"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["x-checksum-sha256"] == hashlib.sha256(r.content).hexdigest()
    assert r.headers["cache-control"] == "no-store" and "attachment" in r.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert {"manifest.json", "submission.json"} <= set(names) and any(n.startswith("files/") for n in names)
    assert list(svc.settings.exports_dir.iterdir()) == []  # built in a temporary folder, deleted once sent
    assert _err(client.post("/v1/reports/999999/export", headers=keys["legal"]), 404) == "report.not_found"
    assert list(svc.settings.exports_dir.iterdir()) == []
