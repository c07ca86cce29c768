"""Preserving, reading and holding evidence: encrypted at rest under its own key, hashes recorded and checked,
every access on the audit log."""

from __future__ import annotations

import hashlib
import logging

import pytest
from sqlalchemy import select, text

from safehold.errors import SafeholdError
from safehold.store.models import EvidenceItem
from tests.evidence.helpers import LEGAL, audit, preserved, text_case
from tests.media import jpeg
from tests.review.helpers import media_case


def test_preserve_case_records_hashes_and_encrypts_under_the_evidence_key(svc):
    data = jpeg(1)
    case_id, item_id = media_case(svc, 1, data=data)
    [kept] = svc.evidence.preserve_case(case_id, LEGAL)
    assert (kept["sha256"], kept["md5"], kept["size"]) == (
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data).hexdigest(),
        len(data),
    )
    assert (kept["case_id"], kept["kind"], kept["source_key"]) == (case_id, "media", f"case_item:{item_id}")
    assert (kept["jurisdiction"], kept["account_id"], kept["filename"]) == ("US", "account-1", "upload-1.jpg")
    assert kept["metadata"]["case_item_id"] == item_id and kept["purged"] is False

    [blob] = [p for p in svc.evidence_store.files()]
    on_disk = blob.read_bytes()
    assert data not in on_disk and kept["sha256"] not in blob.name  # encrypted, and the name reveals no hash
    assert svc.settings.evidence_dir in blob.parents
    with pytest.raises(SafeholdError) as exc:
        svc.sealer.open(on_disk, svc.evidence_store.aad)  # the instance (review) key cannot open evidence
    assert exc.value.code == "keys.unknown_key"  # the blob names the evidence key, which that ring does not hold
    with pytest.raises(SafeholdError):
        svc.vault.sealer.open(on_disk, svc.vault.aad)

    [record] = audit(svc, "evidence.preserve")
    assert record["target"] == f"evidence:{kept['id']}" and record["actor"] == LEGAL
    assert record["detail"]["sha256"] == kept["sha256"] and record["detail"]["md5"] == kept["md5"]


def test_preserve_is_idempotent(svc):
    case_id, first = preserved(svc)
    again = svc.evidence.preserve_case(case_id, "someone-else")
    assert [e["id"] for e in again] == [first["id"]] and again[0]["preserved_by"] == LEGAL
    assert len(audit(svc, "evidence.preserve")) == 1
    assert len(list(svc.evidence_store.files())) == 1
    with svc.db.session() as s:
        assert s.scalar(select(EvidenceItem.id).where(EvidenceItem.case_id == case_id)) == first["id"]


def test_text_items_and_jurisdiction_from_the_case(svc):
    case_id = text_case(svc, metadata={"jurisdiction": "EU"})
    [kept] = svc.evidence.preserve_case(case_id, LEGAL)
    assert (kept["kind"], kept["jurisdiction"], kept["account_id"]) == ("text", "EU", "account-9")
    item, data = svc.evidence.read(kept["id"], LEGAL, "check")
    assert data == b"synthetic message for a test" and item["id"] == kept["id"]


def test_same_content_in_two_cases_shares_one_blob(svc):
    data = jpeg(3)
    a, _ = media_case(svc, 1, data=data, content_id="c1", account_id="acc-a")
    b, _ = media_case(svc, 2, data=data, content_id="c2", account_id="acc-b")
    [ea] = svc.evidence.preserve_case(a, LEGAL)
    [eb] = svc.evidence.preserve_case(b, LEGAL)
    assert ea["id"] != eb["id"] and ea["sha256"] == eb["sha256"]
    assert len(list(svc.evidence_store.files())) == 1


def test_preserve_bytes_is_idempotent_on_case_and_source_key(svc):
    case_id, _ = preserved(svc)
    doc = b"<report>benign</report>"
    meta = {"filename": "r.xml", "media_type": "application/xml", "metadata": {"report_id": 7}}
    one = svc.evidence.preserve_bytes(case_id, "report:7:document", doc, kind="document", actor="system:test", **meta)
    two = svc.evidence.preserve_bytes(case_id, "report:7:document", b"other", kind="document", actor="x")
    assert one == two and one["sha256"] == hashlib.sha256(doc).hexdigest() and one["account_id"] == "account-1"
    loose = svc.evidence.preserve_bytes(None, "note:1", b"no case", kind="text", actor="x")
    assert loose["case_id"] is None and loose["jurisdiction"] == "US"
    assert svc.evidence.preserve_bytes(None, "note:1", b"no case", kind="text", actor="x")["id"] == loose["id"]
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.preserve_bytes(case_id, "k", b"x", kind="video", actor="x")
    assert exc.value.code == "evidence.invalid_kind"


def test_read_verifies_and_records_the_access(svc):
    data = jpeg(4)
    _, kept = preserved(svc, 4, data=data)
    item, got = svc.evidence.read(kept["id"], LEGAL, "subpoena 2026-117")
    assert got == data and item["sha256"] == kept["sha256"]
    [access] = audit(svc, "evidence.access")
    assert (access["actor"], access["target"]) == (LEGAL, f"evidence:{kept['id']}")
    assert access["detail"]["purpose"] == "subpoena 2026-117"
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.read(kept["id"], LEGAL, "  ")
    assert exc.value.code == "evidence.purpose_required"
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.read(999999, LEGAL, "x")
    assert (exc.value.code, exc.value.status) == ("evidence.not_found", 404)
    assert len(audit(svc, "evidence.access")) == 1  # refusals open nothing and record no access


def test_tampered_or_missing_blob_is_corrupt_and_nothing_is_returned(svc, caplog):
    _, kept = preserved(svc)
    [blob] = list(svc.evidence_store.files())
    raw = bytearray(blob.read_bytes())
    raw[-1] ^= 1
    blob.write_bytes(bytes(raw))
    with caplog.at_level(logging.DEBUG), pytest.raises(SafeholdError) as exc:
        svc.evidence.read(kept["id"], LEGAL, "check")
    assert (exc.value.code, exc.value.status) == ("evidence.corrupt", 500)
    blob.unlink()
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.read(kept["id"], LEGAL, "check")
    assert exc.value.code == "evidence.corrupt"
    assert audit(svc, "evidence.access") == []
    key = svc.settings.evidence_key_file.read_text().strip()
    assert key not in caplog.text and key not in str(exc.value)


def test_the_key_is_never_in_the_database(svc):
    preserved(svc)
    svc.evidence.hold(case_id=1, reason="r", actor=LEGAL)
    key = svc.settings.evidence_key_file.read_text().strip()
    with svc.db.session() as s:
        for table in ("evidence_items", "legal_holds", "audit_log"):
            dump = repr(s.execute(text(f"SELECT * FROM {table}")).all())  # noqa: S608 (fixed names)
            assert key not in dump


def test_missing_vault_media_is_a_clear_error(svc, tmp_path):
    case_id, item_id = media_case(svc, 5)
    svc.vault.delete(svc.cases.item(item_id)["sha256"])
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.preserve_case(case_id, LEGAL)
    assert (exc.value.code, exc.value.status) == ("evidence.source_missing", 409)
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.preserve_case(999999, LEGAL)
    assert exc.value.code == "case.not_found"


def test_list_get_and_for_item(svc):
    a, ea = preserved(svc, 1)
    b, eb = preserved(svc, 2, account_id="account-2", content_id="content-2")
    assert [e["id"] for e in svc.evidence.list()] == [ea["id"], eb["id"]]
    assert [e["id"] for e in svc.evidence.list(case_id=b)] == [eb["id"]]
    assert [e["id"] for e in svc.evidence.list(account_id="account-1")] == [ea["id"]]
    assert [e["id"] for e in svc.evidence.list(limit=1, offset=1)] == [eb["id"]]
    with pytest.raises(SafeholdError):
        svc.evidence.list(limit=0)
    one = svc.evidence.get(ea["id"])
    keep = one["retention"]
    assert (keep["jurisdiction"], keep["held"], keep["needed_by_report"], keep["basis"]) == (
        "US",
        False,
        False,
        "preserved",
    )
    assert keep["expires_at"] > one["preserved_at"]
    assert svc.evidence.for_item(999999) is None


def test_holds_place_list_release(svc):
    case_id, kept = preserved(svc)
    for bad in ({}, {"case_id": case_id, "account_id": "a"}, {"case_id": case_id, "reason": " "}):
        with pytest.raises(SafeholdError) as exc:
            svc.evidence.hold(**{"reason": "r", **bad}, actor=LEGAL)
        assert (exc.value.code, exc.value.status) == ("evidence.invalid_hold", 400)
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.hold(case_id=999999, reason="r", actor=LEGAL)
    assert exc.value.code == "case.not_found"
    h = svc.evidence.hold(case_id=case_id, reason="2703(f)", reference="LE-1", days=90, actor=LEGAL)
    assert h["active"] and h["expires_at"] and h["reference"] == "LE-1"
    assert svc.evidence.get(kept["id"])["retention"]["held"] is True
    assert svc.evidence.get(kept["id"])["retention"]["holds"] == [h["id"]]
    assert [x["id"] for x in svc.evidence.holds()] == [h["id"]]
    done = svc.evidence.release(h["id"], LEGAL, note="withdrawn")
    assert done["active"] is False and done["released_by"] == LEGAL
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.release(h["id"], LEGAL)
    assert (exc.value.code, exc.value.status) == ("evidence.hold_released", 409)
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.release(999999, LEGAL)
    assert (exc.value.code, exc.value.status) == ("evidence.hold_not_found", 404)
    assert svc.evidence.holds() == [] and len(svc.evidence.holds(active_only=False)) == 1
    assert svc.evidence.get(kept["id"])["retention"]["held"] is False
    [placed] = audit(svc, "evidence.hold")
    [released] = audit(svc, "evidence.release")
    assert placed["target"] == released["target"] == f"hold:{h['id']}" and released["detail"]["note"] == "withdrawn"


def test_chain_of_custody_verifies(svc):
    _, kept = preserved(svc)
    svc.evidence.read(kept["id"], LEGAL, "look")
    assert svc.audit.verify().ok
