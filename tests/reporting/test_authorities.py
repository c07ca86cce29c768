"""Authorities without an API (UK NCA, Cybertip.ca, eSafety): a package filed by hand, then marked filed."""

from __future__ import annotations

import json
import zipfile

import pytest

from safehold.errors import SafeholdError
from safehold.reporting.authorities import AUTHORITIES, FORMAT
from tests.reporting.helpers import LEGAL, audit_actions, confirmed_case


def _code(call, *args, **kw) -> str:
    with pytest.raises(SafeholdError) as e:
        call(*args, **kw)
    return e.value.code


def test_the_authorities():
    assert set(AUTHORITIES) == {"ncmec", "nca", "cybertip_ca", "esafety"}
    assert [n for n, a in AUTHORITIES.items() if a.files_by_api] == ["ncmec"]


@pytest.mark.parametrize("name", ["nca", "cybertip_ca", "esafety"])
def test_a_report_is_exported_and_marked_filed_by_hand(svc, tmp_path, name):
    case_id, item_id = confirmed_case(svc)
    report = svc.reports.draft_from_case(case_id, LEGAL, authority=name)
    assert svc.reports.draft_from_case(case_id, LEGAL)["id"] != report["id"]  # NCMEC's report is another
    svc.settings.cybertip_username = None  # no NCMEC credentials needed
    out = svc.reports.submit(report["id"], LEGAL)
    assert out["status"] == "submitted" and not out["files_by_api"]
    assert svc.reports.file_due() == 0  # the worker leaves it to the operator
    package = svc.reports.export(report["id"], LEGAL, dest_dir=tmp_path)
    with zipfile.ZipFile(package["path"]) as z:
        names = z.namelist()
        submission = json.loads(z.read("submission.json"))
        manifest = json.loads(z.read("manifest.json"))
    assert "manifest.json" in names and any(n.startswith("files/") for n in names)
    assert submission["format"] == FORMAT and submission["authority"]["name"] == name
    item = svc.cases.item(item_id)
    [f] = submission["files"]
    assert (f["sha256"], f["md5"], f["viewed_by_esp"]) == (item["sha256"], item["md5"], False)
    assert item["sha256"] in json.dumps(manifest)
    assert _code(svc.reports.mark_filed, report["id"], " ", LEGAL) == "report.invalid_field"
    done = svc.reports.mark_filed(report["id"], "REF-2026-0001", LEGAL)
    assert (done["status"], done["external_id"]) == ("finished", "REF-2026-0001")
    [rec] = audit_actions(svc, "report.filed", report["id"])
    assert rec["detail"]["manual"] is True
    assert _code(svc.reports.mark_filed, report["id"], "again", LEGAL) == "report.not_submittable"


def test_ncmec_reports_are_filed_through_the_api(svc):
    case_id, _ = confirmed_case(svc)
    report = svc.reports.draft_from_case(case_id, LEGAL)
    assert _code(svc.reports.mark_filed, report["id"], "123", LEGAL) == "report.files_by_api"
