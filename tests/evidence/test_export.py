"""The law-enforcement package: files, a manifest of hashes, the case/report records, its own checksum file."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from safehold.errors import SafeholdError
from safehold.evidence.export import safe_name
from safehold.store.models import EvidenceItem, Report, ReportCase
from tests.evidence.helpers import LEGAL, audit, preserved, report, text_case
from tests.media import jpeg
from tests.review.helpers import media_case


def _open(package: dict) -> tuple[zipfile.ZipFile, dict]:
    z = zipfile.ZipFile(package["path"])
    return z, json.loads(z.read("manifest.json"))


def test_case_package(svc, tmp_path):
    tmp_path = tmp_path / "out"
    data = jpeg(1)
    case_id, kept = preserved(svc, 1, data=data)
    package = svc.evidence.export(case_id=case_id, actor=LEGAL, reason="subpoena 2026-117", dest_dir=tmp_path)
    path = Path(package["path"])
    assert path.parent == tmp_path and path.stat().st_mode & 0o777 == 0o600
    assert package["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and package["files"] == 1
    assert package["bytes"] == path.stat().st_size
    checksum = path.with_name(path.name + ".sha256").read_text()
    assert checksum == f"{package['sha256']}  {path.name}\n"  # `sha256sum -c` format
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []

    z, manifest = _open(package)
    [entry] = manifest["files"]
    assert entry["name"] == f"files/{kept['sha256']}-upload-1.jpg" and z.read(entry["name"]) == data
    assert (entry["sha256"], entry["md5"], entry["size"]) == (kept["sha256"], kept["md5"], kept["size"])
    assert entry["evidence_ids"] == [kept["id"]] and entry["preserved_at"] == kept["preserved_at"]
    assert (manifest["created_by"], manifest["reason"], manifest["subject"]) == (LEGAL, "subpoena 2026-117",
                                                                                 {"case_id": case_id})  # fmt: skip
    for record in manifest["records"]:  # every record in the package is hashed in the manifest
        assert hashlib.sha256(z.read(record["name"])).hexdigest() == record["sha256"]
    [case] = json.loads(z.read("case.json"))["cases"]
    assert case["id"] == case_id and case["items"][0]["sha256"] == kept["sha256"] and case["history"]
    assert "report.json" not in z.namelist()

    [record] = audit(svc, "evidence.export")
    assert (record["target"], record["actor"]) == (f"case:{case_id}", LEGAL)
    assert record["detail"]["package_sha256"] == package["sha256"] and record["detail"]["evidence_ids"] == [kept["id"]]


def test_report_package_with_document_records_and_purged_items(svc, tmp_path):
    tmp_path = tmp_path / "out"
    data = jpeg(2)
    case_id, kept = preserved(svc, 2, data=data)
    text_id = text_case(svc)  # another case, not in the report: not exported
    svc.evidence.preserve_case(text_id, LEGAL)
    rid = report(svc, case_id, "finished", finished_days_ago=1, evidence_id=kept["id"])
    xml = b"<report><incidentSummary/></report>"
    doc = svc.evidence.preserve_bytes(case_id, f"report:{rid}:document", xml, kind="document", actor="system:x",
                                      filename=f"cybertipline-report-{rid}.xml")  # fmt: skip
    svc.evidence.preserve_bytes(case_id, "report:999:document", b"<other/>", kind="document", actor="x")
    with svc.db.session() as s:
        s.get(Report, rid).document_sha256 = doc["sha256"]
    same_case, _ = media_case(svc, 3, content_id="content-2")  # a second file of the same subject, purged since
    assert same_case == case_id
    [_, purged] = svc.evidence.preserve_case(case_id, LEGAL)

    package = svc.evidence.export(report_id=rid, actor=LEGAL, reason="NCA", dest_dir=tmp_path,
                                  records={"submission": {"authority": "nca", "files": 1}})  # fmt: skip
    z, manifest = _open(package)
    names = set(z.namelist())
    assert {"manifest.json", "case.json", "report.json", "report.xml", "submission.json"} <= names
    assert z.read("report.xml") == xml
    assert json.loads(z.read("submission.json")) == {"authority": "nca", "files": 1}
    rep = json.loads(z.read("report.json"))
    assert rep["id"] == rid and rep["files"][0]["evidence_id"] == kept["id"]
    assert {f["sha256"] for f in manifest["files"]} == {kept["sha256"], doc["sha256"], purged["sha256"]}
    assert b"<other/>" not in b"".join(z.read(n) for n in names)  # another report's document stays out
    assert manifest["subject"] == {"report_id": rid, "case_ids": [case_id]}

    with svc.db.session() as s:  # (its report keeps it from the purge: mark it purged as a purge would)
        row = s.get(EvidenceItem, purged["id"])
        row.purged_at, row.purged_by = row.preserved_at, "system:retention"
    z, manifest = _open(svc.evidence.export(report_id=rid, actor=LEGAL, reason="again", dest_dir=tmp_path))
    assert purged["sha256"] not in {f["sha256"] for f in manifest["files"]}
    assert [p["evidence_id"] for p in manifest["purged"]] == [purged["id"]]


def test_one_copy_per_content(svc, tmp_path):
    """The same picture in two cases of one report is packaged once, listing both records."""
    data = jpeg(4)
    case_id, _ = media_case(svc, 1, data=data)
    b, _ = media_case(svc, 2, data=data, content_id="c2", account_id="account-1")
    svc.evidence.preserve_case(case_id, LEGAL)
    svc.evidence.preserve_case(b, LEGAL)
    rid = report(svc, case_id, "draft")
    with svc.db.session() as s:
        s.add(ReportCase(report_id=rid, case_id=b))
    package = svc.evidence.export(report_id=rid, actor=LEGAL, reason="r", dest_dir=tmp_path)
    _, manifest = _open(package)
    [entry] = manifest["files"]
    assert package["files"] == 1 and len(entry["evidence_ids"]) == 2 and sorted(entry["case_ids"]) == [case_id, b]


def test_export_errors(svc, tmp_path):
    tmp_path = tmp_path / "out"
    case_id, _ = preserved(svc)
    for kw, code in (
        ({}, "evidence.invalid_export"),
        ({"case_id": case_id, "report_id": 1}, "evidence.invalid_export"),
        ({"case_id": case_id, "reason": " "}, "evidence.invalid_export"),
        ({"case_id": 999999}, "case.not_found"),
        ({"report_id": 999999}, "report.not_found"),
        ({"case_id": case_id, "records": {"manifest": {}}}, "evidence.invalid_record"),
        ({"case_id": case_id, "records": {"../x": {}}}, "evidence.invalid_record"),
    ):
        with pytest.raises(SafeholdError) as exc:
            svc.evidence.export(**{"reason": "r", **kw}, actor=LEGAL, dest_dir=tmp_path)
        assert exc.value.code == code
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == [] and audit(svc, "evidence.export") == []


def test_no_package_stays_without_its_custody_record(svc, tmp_path, monkeypatch):
    tmp_path = tmp_path / "out"
    case_id, _ = preserved(svc)

    def broken(*a, **kw):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(svc.evidence.audit, "record", broken)
    with pytest.raises(RuntimeError):
        svc.evidence.export(case_id=case_id, actor=LEGAL, reason="r", dest_dir=tmp_path)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_default_destination_and_safe_names(svc):
    case_id, _ = preserved(svc)
    package = svc.evidence.export(case_id=case_id, actor=LEGAL, reason="r")
    assert Path(package["path"]).parent == svc.settings.exports_dir
    assert safe_name("../../etc/passwd", "media") == "passwd"
    assert safe_name("C:\\photos\\a b.jpg", "media") == "a_b.jpg"
    assert safe_name(None, "text") == "text.txt" and safe_name("..", "document") == "document.xml"
