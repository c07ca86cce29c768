"""`safehold report …` and `safehold evidence …`: the same operations as the API, from a terminal."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from tests.reporting.helpers import confirmed_case


@pytest.fixture
def filing_env(monkeypatch, cybertip, svc):
    """The CLI's own services (built from the environment) file with the test's stand-in."""
    s = svc.settings
    names = ("cybertip_url", "cybertip_username", "cybertip_password", "platform_name", "legal_url")
    for name in names + ("reporter_first_name", "reporter_last_name", "reporter_email"):
        monkeypatch.setenv(f"SAFEHOLD_{name.upper()}", str(getattr(s, name)))
    return cybertip


def test_report_commands(cli, svc, filing_env, tmp_path):
    case_id, item_id = confirmed_case(svc)
    drafted = json.loads(cli("report", "draft", case_id, "--json").stdout)
    rid = drafted["id"]
    assert f"report {rid} (draft)" in cli("report", "draft", case_id).stdout  # the same report again
    assert "case.not_found" in cli("report", "draft", 999_999, code=2).stderr
    listed = [json.loads(line) for line in cli("report", "list", "--json").stdout.splitlines()]
    assert [(r["id"], r["case_ids"]) for r in listed] == [(rid, [case_id])]
    assert "draft" in cli("report", "list", "--status", "draft").stdout
    assert "report.invalid_filter" in cli("report", "list", "--status", "sent", code=2).stderr

    assert "nothing_to_change" in cli("report", "edit", rid, code=2).stderr
    assert "report.invalid_field" in cli("report", "edit", rid, "--incident-type", "Spam", code=2).stderr
    assert "cli.invalid_json" in cli("report", "edit", rid, "--changes", "{oops", code=2).stderr
    file_id = drafted["files"][0]["id"]
    changes = json.dumps({"files": {str(file_id): {"annotations": ["generativeAi"]}}})
    out = cli("report", "edit", rid, "-a", "sextortion", "--info", "Seen in a public group.", "--changes", changes)
    assert "annotations" in out.stdout and "files" in out.stdout
    shown = json.loads(cli("report", "show", rid, "--json").stdout)
    assert shown["fields"]["annotations"] == ["sextortion"] and shown["files"][0]["fields"]["annotations"] == [
        "generativeAi"
    ]
    table = cli("report", "show", rid).stdout
    assert "sextortion" in table and "no" in table  # not viewed: nobody revealed the file
    xml = tmp_path / "report.xml"
    cli("report", "document", rid, "-o", xml)
    assert b"<sextortion>true</sextortion>" in xml.read_bytes()
    assert "<report" in cli("report", "document", rid).stdout

    assert "ok:" in cli("report", "check").stdout
    filed = cli("report", "submit", rid, "--wait").stdout
    assert "finished as" in filed
    status = json.loads(cli("report", "status", rid, "--json").stdout)
    assert status["status"] == "finished" and filing_env.reports[status["external_id"]].finished
    assert "described" in cli("report", "status", rid).stdout
    assert "report.finished" in cli("report", "retract", rid, "--reason", "x", code=2).stderr


def test_report_retract_filed_and_export(cli, svc, tmp_path):
    case_id, _ = confirmed_case(svc)
    ncmec = json.loads(cli("report", "draft", case_id, "--json").stdout)["id"]
    assert "cybertip.not_configured" in cli("report", "submit", ncmec, code=2).stderr
    assert "cybertip.not_configured" in cli("report", "check", code=2).stderr
    assert "retracted" in cli("report", "retract", ncmec, "--reason", "wrong case").stdout
    nca = json.loads(cli("report", "draft", case_id, "--authority", "nca", "--json").stdout)["id"]
    out = cli("report", "export", nca, "--out", tmp_path).stdout
    [package] = tmp_path.glob("*.zip")
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    assert digest in out and digest in (tmp_path / f"{package.name}.sha256").read_text()
    assert "submission.json" in zipfile.ZipFile(package).namelist()
    assert "finished as NCA-7" in cli("report", "filed", nca, "NCA-7").stdout
    assert "report.not_found" in cli("report", "show", 999, code=2).stderr


def test_evidence_commands(cli, svc, tmp_path):
    case_id, item_id = confirmed_case(svc)
    svc.evidence.preserve_case(case_id, "legal:lee")
    rows = [json.loads(line) for line in cli("evidence", "list", "--json").stdout.splitlines()]
    assert [r["case_id"] for r in rows] == [case_id]
    assert "media" in cli("evidence", "list").stdout
    shown = cli("evidence", "show", rows[0]["id"]).stdout
    assert rows[0]["sha256"] in shown and "legal hold: no" in shown
    assert "evidence.not_found" in cli("evidence", "show", 999, code=2).stderr

    assert "evidence.invalid_export" in cli("evidence", "export", "--reason", "x", code=2).stderr
    out = cli("evidence", "export", "--case", case_id, "--reason", "subpoena", "--out", tmp_path).stdout
    [package] = tmp_path.glob("*.zip")
    assert hashlib.sha256(package.read_bytes()).hexdigest() in out

    held = cli("evidence", "hold", "--case", case_id, "--reason", "2703(f)", "--days", 30).stdout
    assert f"on case {case_id} until" in held
    assert "evidence.invalid_hold" in cli("evidence", "hold", "--reason", "x", code=2).stderr
    holds = [json.loads(line) for line in cli("evidence", "holds", "--json").stdout.splitlines()]
    assert [h["case_id"] for h in holds] == [case_id]
    assert "2703(f)" in cli("evidence", "holds").stdout
    assert "legal hold: yes" in cli("evidence", "show", rows[0]["id"]).stdout
    assert "released" in cli("evidence", "release", holds[0]["id"], "--note", "done").stdout
    assert "evidence.hold_released" in cli("evidence", "release", holds[0]["id"], code=2).stderr
    assert cli("evidence", "holds", "--json").stdout == ""
    assert len(cli("evidence", "holds", "--all", "--json").stdout.splitlines()) == 1

    assert "would delete 0 item(s)" in cli("evidence", "purge", "--dry-run").stdout
    assert json.loads(cli("evidence", "purge", "--json").stdout)["purged"] == 0
