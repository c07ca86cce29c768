"""Feedback and contribution through the API and the CLI: a match on a fetched entry, marked a false positive,
seen reaching the stand-in exchange and on the entry's feedback list; a failed opinion retried; a confirmed case's
hashes contributed and exported in NCMEC's XML."""

from __future__ import annotations

import json

from safehold.cli import common
from tests.sharing.fakes import rejected
from tests.sharing.test_feedback import confirmed_new_material, decide, entry_ids, exchanges, matched_case  # noqa: F401


def test_a_false_positive_is_seen_reaching_the_exchange(svc, client, keys, exchanges):  # noqa: F811
    case_id = matched_case(svc)
    assert client.post(f"/v1/cases/{case_id}/claim", headers=keys["reviewer"]).status_code == 200
    r = client.post(f"/v1/cases/{case_id}/decision", json={"decision": "not_violating"}, headers=keys["reviewer"])
    assert r.status_code == 200, r.text
    exchanges["peer"].failures = [rejected()]
    svc.feedback.run_once(limit=1)
    entry_id = entry_ids(svc)[0]
    r = client.get("/v1/feedback", params={"entry_id": entry_id}, headers=keys["auditor"])
    [row] = r.json()["feedback"]
    assert (row["verdict"], row["status"], row["last_error_code"]) == ("false_positive", "failed", "exchange.rejected")
    assert client.post(f"/v1/feedback/{row['id']}/retry", headers=keys["reviewer"]).status_code == 403
    r = client.post(f"/v1/feedback/{row['id']}/retry", headers=keys["senior_reviewer"])
    assert r.status_code == 200 and r.json()["status"] == "queued"
    svc.feedback.run_once()
    r = client.get("/v1/feedback", params={"entry_id": entry_id, "status": "sent"}, headers=keys["reviewer"])
    assert [f["id"] for f in r.json()["feedback"]] == [row["id"]]
    assert {o.verdict for o in exchanges["peer"].opinions} == {"false_positive"}
    r = client.post("/v1/feedback/999999/retry", headers=keys["admin"])
    assert (r.status_code, r.json()["error"]["code"]) == (404, "feedback.not_found")
    r = client.get("/v1/feedback", params={"status": "lost"}, headers=keys["admin"])
    assert r.status_code == 422


def test_contribute_and_export_a_confirmed_case(svc, client, keys, exchanges):  # noqa: F811
    case_id = confirmed_new_material(svc)
    r = client.post(f"/v1/cases/{case_id}/contribute", json={"exchange": "peer"}, headers=keys["senior_reviewer"])
    assert r.status_code == 200 and r.json()["status"] == "sent", r.text
    r = client.post(f"/v1/cases/{case_id}/contribute", json={"exchange": "nope"}, headers=keys["admin"])
    assert (r.status_code, r.json()["error"]["code"]) == (404, "exchange.not_found")
    r = client.get(f"/v1/cases/{case_id}/hashes", headers=keys["auditor"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert b"hashsharing.ncmec.org" in r.content and b"<pdq" in r.content and b"<md5" in r.content
    open_case = matched_case(svc, seed=3)
    r = client.get(f"/v1/cases/{open_case}/hashes", headers=keys["admin"])
    assert (r.status_code, r.json()["error"]["code"]) == (409, "contribution.not_confirmed")


def test_cli(svc, cli, exchanges, tmp_path):  # noqa: F811
    decide(svc, matched_case(svc), "not_violating")
    case_id = confirmed_new_material(svc)
    cli("feedback", "list")
    common._services.feedback.adapter_for = common._services.contributions.adapter_for = exchanges.__getitem__
    assert "2 opinion(s)" in cli("feedback", "run").output
    rows = [json.loads(line) for line in cli("feedback", "list", "--status", "sent", "--json").output.splitlines()]
    assert len(rows) == 2 and {r["verdict"] for r in rows} == {"false_positive"}
    assert "queued again" not in cli("feedback", "retry", rows[0]["id"], code=2).output
    assert "accepted" in cli("exchange", "contribute", "--case", case_id, "--to", "peer").output
    assert "already sent" in cli("exchange", "contribute", "--case", case_id, "--to", "peer").output
    target = tmp_path / "case.xml"
    cli("exchange", "export-case", "--case", case_id, "--output", target)
    assert target.read_bytes().startswith(b"<?xml")
