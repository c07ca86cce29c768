"""Drafting reports from confirmed cases: one per incident, evidence preserved, fields edited and validated."""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlschema

from safehold.errors import SafeholdError
from safehold.reporting.cybertipline.vocabulary import INCIDENT_CSAM, INCIDENT_ENTICEMENT
from tests.reporting.helpers import LEGAL, audit_actions, confirmed_case, draft
from tests.review.helpers import ALICE, media_case

SHARED_XSD = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cybertipline" / "cyber_tipline.xsd"


def _code(call, *args, **kw) -> str:
    with pytest.raises(SafeholdError) as e:
        call(*args, **kw)
    return e.value.code


def test_a_confirmed_case_becomes_a_draft_with_its_evidence(svc):
    case_id, item_id = confirmed_case(svc, known=False)
    report = svc.reports.draft_from_case(case_id, LEGAL)
    assert (report["status"], report["authority"], report["incident_key"]) == ("draft", "ncmec", "account:account-1")
    assert [c["id"] for c in report["cases"]] == [case_id]
    assert report["fields"]["incident_type"] == INCIDENT_CSAM
    assert report["fields"]["reported_user"] == {"esp_identifier": "account-1"}
    [f] = report["files"]
    item = svc.cases.item(item_id)
    assert (f["case_item_id"], f["sha256"], f["md5"]) == (item_id, item["sha256"], item["md5"])
    assert f["classification"] == "A1"
    assert f["evidence_id"] == svc.evidence.for_item(item_id)["id"]  # preserved, encrypted, in the evidence store
    assert (f["viewed_by_esp"], f["exif_viewed_by_esp"]) == (False, False)  # nobody revealed it
    [rec] = audit_actions(svc, "report.draft", report["id"])
    assert rec["actor"] == LEGAL and rec["detail"]["case_id"] == case_id
    # idempotent: the same case gives the same report, recorded once
    assert svc.reports.draft_from_case(case_id, LEGAL)["id"] == report["id"]
    assert len(audit_actions(svc, "report.draft")) == 1


def test_only_confirmed_findings_are_reported(svc):
    open_case, _ = media_case(svc, 1)
    assert _code(svc.reports.draft_from_case, open_case, LEGAL) == "report.not_confirmed"
    waiting, _ = media_case(svc, 2, content_id="c-2", account_id="acc-2")
    svc.cases.claim(waiting, ALICE.label)
    svc.review.decide(waiting, ALICE, "csam", "A1")  # awaits a second reviewer
    assert _code(svc.reports.draft_from_case, waiting, LEGAL) == "report.not_confirmed"
    cleared, _ = media_case(svc, 3, content_id="c-3", account_id="acc-3")
    svc.cases.claim(cleared, ALICE.label)
    svc.review.decide(cleared, ALICE, "not_violating")
    assert _code(svc.reports.draft_from_case, cleared, LEGAL) == "report.not_confirmed"
    assert _code(svc.reports.draft_from_case, 999_999, LEGAL) == "case.not_found"
    case_id, _ = confirmed_case(svc, 4, content_id="c-4", account_id="acc-4")
    assert _code(svc.reports.draft_from_case, case_id, LEGAL, authority="fbi") == "report.invalid_authority"
    assert svc.reports.list() == []


def test_an_accounts_cases_are_bundled_and_files_listed_once(svc, tmp_path):
    first, _ = confirmed_case(svc, 1, content_id="c-1")
    second, _ = confirmed_case(svc, 2, content_id="c-2", decision="cse", classification="sextortion")
    from tests.media import jpeg

    again, _ = confirmed_case(svc, 3, content_id="c-3", data=jpeg(1))  # the first picture, re-uploaded
    other, _ = confirmed_case(svc, 4, content_id="c-4", account_id="account-2")
    report = svc.reports.draft_from_case(first, LEGAL)
    for case_id in (second, again):
        assert svc.reports.draft_from_case(case_id, LEGAL)["id"] == report["id"]
    report = svc.reports.get(report["id"])
    assert [c["id"] for c in report["cases"]] == [first, second, again]
    assert len(report["files"]) == 2 and len({f["sha256"] for f in report["files"]}) == 2
    assert report["fields"]["incident_type"] == INCIDENT_CSAM  # the first case's; the reviewer may change it
    assert report["fields"]["annotations"] == ["sextortion"]  # the sextortion case's annotation joined
    assert svc.reports.draft_from_case(other, LEGAL)["id"] != report["id"]
    assert [r["id"] for r in svc.reports.list(case_id=second)] == [report["id"]]
    assert {r["id"]: r["file_count"] for r in svc.reports.list()}[report["id"]] == 2


def test_incident_types_follow_the_finding(svc):
    grooming = draft(svc, 1, decision="cse", classification="grooming", account_id="a1", content_id="c1")
    solicitation = draft(svc, 2, decision="cse", classification="solicitation", account_id="a2", content_id="c2")
    assert (grooming["fields"]["incident_type"], grooming["fields"]["annotations"]) == (INCIDENT_ENTICEMENT, [])
    assert (solicitation["fields"]["incident_type"], solicitation["fields"]["annotations"]) == (
        INCIDENT_CSAM,
        ["csamSolicitation"],
    )
    assert grooming["files"][0]["classification"] is None  # A1..B2 only for CSAM findings


def test_edits_are_checked_against_the_schema(svc):
    report = draft(svc)
    file_id = report["files"][0]["id"]
    changes = {
        "incident_type": INCIDENT_ENTICEMENT,
        "annotations": ["sextortion", "minorToMinorInteraction"],
        "escalate_to_high_priority": "  Ongoing contact with a child  ",
        "incident_description": "Uploaded over two days",
        "additional_info": "Account removed.",
        "reported_user": {"screen_name": "bad_actor", "email": "bad@example.net", "esp_identifier": "account-1"},
        "files": {
            str(file_id): {"annotations": ["generativeAi"], "relevance": "Reported", "publicly_available": False}
        },
    }
    out = svc.reports.update(report["id"], changes, LEGAL)
    assert out["fields"]["escalate_to_high_priority"] == "Ongoing contact with a child"
    assert out["fields"]["reported_user"]["screen_name"] == "bad_actor"
    assert out["files"][0]["fields"] == {"annotations": ["generativeAi"], "relevance": "Reported",
                                         "publicly_available": False}  # fmt: skip
    [rec] = audit_actions(svc, "report.update", report["id"])
    assert rec["detail"] == {"fields": sorted(set(changes) - {"files"}), "files": [file_id]}
    for bad in (
        {"colour": "red"},
        {"incident_type": "Spam"},
        {"annotations": ["informational"]},  # newer than the bundled schema
        {"annotations": "sextortion"},
        {"reported_user": {"age": 40}},
        {"files": {"999999": {"annotations": []}}},
        {"files": {str(file_id): {"annotations": ["cute"]}}},
        {"files": {str(file_id): {"relevance": "Very"}}},
        {"files": {str(file_id): {"publicly_available": "yes"}}},
        {"additional_info": "x" * 10_001},
    ):
        assert _code(svc.reports.update, report["id"], bad, LEGAL) == "report.invalid_field", bad
    assert _code(svc.reports.update, 999_999, {}, LEGAL) == "report.not_found"


def test_the_document_validates_against_ncmecs_schema(svc):
    ip_events = [
        {"ip": "192.0.2.7", "type": "login", "at": "2026-01-02T03:04:05Z"},
        {"ip": "198.51.100.1", "type": "chat"},
    ]
    metadata = {"account": {"screen_name": "someone", "profile_url": "https://example.org/u/1"}, "ip_events": ip_events}
    report = draft(svc, metadata=metadata, url="https://example.org/p/1")
    assert report["fields"]["reported_user"] == {"screen_name": "someone", "profile_url": "https://example.org/u/1",
                                                 "esp_identifier": "account-1"}  # fmt: skip
    assert [(e["ip"], e["event"]) for e in report["ip_events"]] == [("192.0.2.7", "Login"), ("198.51.100.1", "Other")]
    assert report["urls"] == ["https://example.org/p/1"]
    xml = svc.reports.document(report["id"])
    xmlschema.XMLSchema(str(SHARED_XSD)).validate(xml.decode())
    text = xml.decode()
    for expected in (INCIDENT_CSAM, "someone", "192.0.2.7", "<eventName>Login</eventName>", "https://example.org/p/1"):
        assert expected in text
    assert _code(svc.reports.document, 999_999) == "report.not_found"
