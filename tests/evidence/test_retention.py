"""The retention rule (a table of cases), the facts it reads from reports and holds, and the purge: only what
expired goes, with proof of deletion, never a blob another live record needs."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.evidence import retention
from safehold.evidence.retention import Hold
from safehold.store.models import EvidenceItem, LegalHold
from tests.evidence.helpers import DAY, LEGAL, audit, backdate, now, preserved, report
from tests.media import jpeg
from tests.review.helpers import media_case

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RULES = Settings(evidence_retention_days=365, evidence_retention_by_jurisdiction={"EU": 180})


@pytest.mark.parametrize(
    ("facts", "expires", "held", "needed"),
    [
        ({}, T0 + 365 * DAY, False, False),  # preserved, nothing else: a year after preservation
        ({"jurisdiction": "EU"}, T0 + 180 * DAY, False, False),  # per-jurisdiction days
        ({"finished": [T0 + 10 * DAY, T0 + 30 * DAY]}, T0 + 395 * DAY, False, False),  # latest finished report
        ({"unfinished": [4]}, None, False, True),  # a draft/submitted/failed report keeps it
        ({"unfinished": [4], "finished": [T0]}, None, False, True),
        ({"holds": [Hold(1, None)]}, None, True, False),  # a hold until released
        ({"holds": [Hold(1, T0 + 900 * DAY)]}, T0 + 900 * DAY, True, False),  # a hold that lapses later
        ({"holds": [Hold(1, T0 + 9 * DAY)]}, T0 + 365 * DAY, True, False),  # a hold shorter than retention
        ({"holds": [Hold(1, T0 + 9 * DAY), Hold(2, None)]}, None, True, False),
    ],
)
def test_rule(facts, expires, held, needed):
    keep = retention.decide(RULES, **{"jurisdiction": "US", "preserved_at": T0, **facts})
    assert (keep.expires_at, keep.held, keep.needed_by_report) == (expires, held, needed)
    assert keep.due(T0 + 10_000 * DAY) is (expires is not None)
    assert not keep.due(T0)


def _keep(svc, evidence_id):
    return svc.evidence.get(evidence_id)["retention"]


@pytest.mark.parametrize("status", ["draft", "submitted", "failed"])
def test_unfinished_reports_keep_evidence(svc, status):
    case_id, kept = preserved(svc)
    backdate(svc, kept["id"], 800)
    rid = report(svc, case_id, status)
    keep = _keep(svc, kept["id"])
    assert (keep["needed_by_report"], keep["reports"], keep["expires_at"]) == (True, [rid], None)
    assert svc.evidence.expired() == [] and svc.evidence.purge("x")["purged"] == 0


def test_a_file_of_an_unfinished_report_is_kept_even_from_another_case(svc):
    _, kept = preserved(svc)
    other, _ = media_case(svc, 7, content_id="other", account_id="other")
    backdate(svc, kept["id"], 800)
    report(svc, other, "submitted", evidence_id=kept["id"])
    assert _keep(svc, kept["id"])["needed_by_report"] is True and svc.evidence.expired() == []


def test_finished_reports_start_the_year_and_retracted_ones_keep_nothing(svc):
    case_id, kept = preserved(svc)
    backdate(svc, kept["id"], 800)
    report(svc, case_id, "retracted")
    report(svc, case_id, "finished", finished_days_ago=100)
    keep = _keep(svc, kept["id"])
    assert keep["basis"] == "report_finished" and not keep["needed_by_report"]
    assert dt.datetime.fromisoformat(keep["expires_at"]) > now() + 200 * DAY
    assert svc.evidence.expired() == []
    assert [e["id"] for e in svc.evidence.expired(now() + 300 * DAY)] == [kept["id"]]


def test_per_jurisdiction_days(svc):
    svc.settings.evidence_retention_by_jurisdiction = {"EU": 30}
    case_id, _ = media_case(svc, 1, metadata={"jurisdiction": "EU"})
    [eu] = svc.evidence.preserve_case(case_id, LEGAL)
    _, us = preserved(svc, 2, content_id="c2", account_id="acc-2")
    for e in (eu, us):
        backdate(svc, e["id"], 40)
    assert [e["id"] for e in svc.evidence.expired()] == [eu["id"]]


def test_holds_on_case_or_account_keep_evidence_until_released_or_lapsed(svc):
    case_id, kept = preserved(svc)
    backdate(svc, kept["id"], 800)
    by_case = svc.evidence.hold(case_id=case_id, reason="r", actor=LEGAL)
    by_account = svc.evidence.hold(account_id="account-1", reason="r", actor=LEGAL, days=5)
    assert svc.evidence.expired() == []
    svc.evidence.release(by_case["id"], LEGAL)
    assert svc.evidence.expired() == []  # the account hold still runs
    assert [e["id"] for e in svc.evidence.expired(now() + 6 * DAY)] == [kept["id"]]  # …until it lapses
    with svc.db.session() as s:
        s.get(LegalHold, by_account["id"]).expires_at = now() - DAY
    assert [e["id"] for e in svc.evidence.expired()] == [kept["id"]]


def test_purge_deletes_only_what_expired_and_records_proof(svc):
    old_case, old = preserved(svc, 1)
    _, fresh = preserved(svc, 2, content_id="c2", account_id="acc-2")
    held_case, held = preserved(svc, 3, content_id="c3", account_id="acc-3")
    for e in (old, held):
        backdate(svc, e["id"], 400)
    svc.evidence.hold(case_id=held_case, reason="r", actor=LEGAL)

    dry = svc.evidence.purge(LEGAL, dry_run=True)
    assert (dry["purged"], dry["dry_run"], [i["evidence_id"] for i in dry["items"]]) == (1, True, [old["id"]])
    assert audit(svc, "evidence.purge") == [] and svc.evidence.get(old["id"])["purged"] is False

    done = svc.evidence.purge(LEGAL)
    assert (done["purged"], done["bytes"]) == (1, old["size"])
    [proof] = done["items"]
    assert proof["blob_deleted"] is True and proof["sha256"] == old["sha256"] and proof["deleted_at"]
    [record] = audit(svc, "evidence.purge")
    assert record["detail"] == proof and record["target"] == f"evidence:{old['id']}" and record["actor"] == LEGAL
    for key in ("sha256", "md5", "size", "preserved_at", "expires_at", "deleted_at"):
        assert record["detail"][key]

    gone = svc.evidence.get(old["id"])
    assert gone["purged"] and gone["purged_by"] == LEGAL  # the row stays: the proof it existed
    assert not svc.evidence_store.exists(old["sha256"])
    with pytest.raises(SafeholdError) as exc:
        svc.evidence.read(old["id"], LEGAL, "look")
    assert (exc.value.code, exc.value.status) == ("evidence.purged", 410)
    for e in (fresh, held):
        assert svc.evidence.read(e["id"], LEGAL, "look")[1]
    assert svc.evidence.purge(LEGAL)["purged"] == 0  # nothing twice
    assert [e["id"] for e in svc.evidence.list(case_id=old_case, include_purged=True)] == [old["id"]]
    assert svc.evidence.list(case_id=old_case) == []
    assert svc.audit.verify().ok


def test_a_blob_shared_with_a_live_record_stays(svc):
    data = jpeg(5)
    a, _ = media_case(svc, 1, data=data, content_id="c1", account_id="acc-a")
    b, _ = media_case(svc, 2, data=data, content_id="c2", account_id="acc-b")
    [ea], [eb] = svc.evidence.preserve_case(a, LEGAL), svc.evidence.preserve_case(b, LEGAL)
    backdate(svc, ea["id"], 400)
    [proof] = svc.evidence.purge(LEGAL)["items"]
    assert proof["evidence_id"] == ea["id"] and proof["blob_deleted"] is False
    assert svc.evidence.read(eb["id"], LEGAL, "look")[1] == data


def test_a_hold_placed_after_listing_wins(svc):
    case_id, kept = preserved(svc)
    backdate(svc, kept["id"], 400)
    [(row, _)] = svc.evidence._due(now())
    svc.evidence.hold(case_id=case_id, reason="arrived just now", actor=LEGAL)
    assert svc.evidence._purge_one(row.id, LEGAL, now()) is None
    assert svc.evidence.get(kept["id"])["purged"] is False


def test_crash_between_marking_and_deleting_leaves_an_orphan_the_sweep_removes(svc, monkeypatch):
    _, kept = preserved(svc)
    backdate(svc, kept["id"], 400)

    def crash(sha256):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(svc.evidence, "_drop_blob", crash)
    with pytest.raises(KeyboardInterrupt):
        svc.evidence.purge(LEGAL)
    monkeypatch.undo()
    assert svc.evidence.get(kept["id"])["purged"] and svc.evidence_store.exists(kept["sha256"])  # an orphan
    assert svc.evidence.sweep() == 0  # too recent: left alone for now
    assert svc.evidence.sweep(older_than=dt.timedelta(0)) == 1
    assert not svc.evidence_store.exists(kept["sha256"])
    [swept] = audit(svc, "evidence.sweep")
    assert swept["detail"] == {"files_deleted": 1}


def test_sweep_keeps_every_live_blob(svc):
    _, kept = preserved(svc)
    orphan = svc.evidence_store.put(b"a preservation that crashed before its record")
    assert svc.evidence.sweep(older_than=dt.timedelta(0)) == 1
    assert svc.evidence_store.exists(kept["sha256"]) and not svc.evidence_store.exists(orphan.sha256)


def test_preserving_again_after_a_purge_rewrites_the_blob(svc):
    data = jpeg(6)
    a, _ = media_case(svc, 1, data=data, content_id="c1", account_id="acc-a")
    [ea] = svc.evidence.preserve_case(a, LEGAL)
    backdate(svc, ea["id"], 400)
    svc.evidence.purge(LEGAL)
    b, _ = media_case(svc, 2, data=data, content_id="c2", account_id="acc-b")
    [eb] = svc.evidence.preserve_case(b, LEGAL)
    assert svc.evidence.read(eb["id"], LEGAL, "look")[1] == data


def test_purge_due_runs_at_most_hourly_as_the_system(svc):
    _, kept = preserved(svc)
    backdate(svc, kept["id"], 400)
    t = now()
    assert svc.evidence.purge_due(t) == 1
    _, later = preserved(svc, 2, content_id="c2", account_id="acc-2")
    backdate(svc, later["id"], 400)
    assert svc.evidence.purge_due(t + dt.timedelta(minutes=30)) == 0
    assert svc.evidence.purge_due(t + dt.timedelta(minutes=61)) == 1
    assert {r["actor"] for r in audit(svc, "evidence.purge")} == {"system:retention"}
    svc.maintain_once()  # wired into upkeep
    with svc.db.session() as s:
        assert s.scalar(select(EvidenceItem.purged_by).where(EvidenceItem.id == later["id"])) == "system:retention"
