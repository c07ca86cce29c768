"""Filing with the CyberTipline stand-in: accepted, resumable after a crash at any step without duplicates,
retried or failed by response code, viewed flags from the audit log only, and only one filer at a time."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import update

from safehold.errors import SafeholdError
from safehold.reporting.filing import Filer
from safehold.store.models import Report, utcnow
from tests.media import jpeg
from tests.reporting.helpers import LEGAL, about, as_bytes, audit_actions, confirmed_case, finished_for, lapse_lease
from tests.review.helpers import ALICE, BOB


class Crash(BaseException):
    """The process dies here: nothing after it runs, nothing uncommitted survives (not an ``Exception``, so no
    handler in the filer sees it)."""


def crash_at(point: str, nth: int = 1):
    seen = []

    def hook(at: str) -> None:
        if at == point:
            seen.append(at)
            if len(seen) == nth:
                raise Crash(point)

    return hook


def two_file_report(svc, account: str) -> dict:
    """A submitted report about ``account`` with two files (two confirmed cases bundled)."""
    seed = int(hashlib.sha256(account.encode()).hexdigest()[:6], 16)
    first, _ = confirmed_case(svc, seed, account_id=account, content_id=f"{account}-1")
    second, _ = confirmed_case(svc, seed + 1, account_id=account, content_id=f"{account}-2")
    report = svc.reports.draft_from_case(first, LEGAL)
    svc.reports.draft_from_case(second, LEGAL)
    return svc.reports.submit(report["id"], LEGAL)


def assert_filed_once(svc, cybertip, report_id: int, account: str) -> None:
    report = svc.reports.get(report_id)
    assert report["status"] == "finished", report
    [filed] = finished_for(cybertip, account)  # exactly one finished report at NCMEC
    assert filed is cybertip.reports[report["external_id"]]
    md5s = sorted(md5 for _, md5, _, _ in filed.files.values())
    assert md5s == sorted(f["md5"] for f in report["files"])  # every file once, none twice
    assert all(details for *_, details in filed.files.values())  # each described
    assert not [r for r in about(cybertip, account) if r is not filed and not r.retracted and r.finished]


def test_a_confirmed_case_is_filed_and_accepted(svc, cybertip):
    case_id, item_id = confirmed_case(svc, known=False)
    report = svc.reports.draft_from_case(case_id, LEGAL)
    out = svc.reports.submit(report["id"], LEGAL, wait=True)
    assert (out["status"], out["step"], out["environment"], out["filing"]) == ("finished", "finished", "test", False)
    assert out["external_id"] and out["finished_at"] and out["last_error"] is None
    filed = cybertip.reports[out["external_id"]]
    assert filed.finished and not filed.retracted
    [(file_id, (name, md5, size, details))] = filed.files.items()
    item = svc.cases.item(item_id)
    assert (name, md5, size) == (item["filename"], item["md5"], item["size"])
    details = as_bytes(details)
    assert out["files"][0]["file_id"] == file_id and b"<fileViewedByEsp>false</fileViewedByEsp>" in details
    assert b"<industryClassification>A1</industryClassification>" in details
    # the document as filed is preserved (encrypted) with its hash on the report
    assert out["document_sha256"] == hashlib.sha256(as_bytes(filed.xml)).hexdigest()
    docs = [e for e in svc.evidence.list(case_id=case_id) if e["kind"] == "document"]
    assert [d["sha256"] for d in docs] == [out["document_sha256"]]
    [submit] = audit_actions(svc, "report.submit", out["id"])
    [done] = audit_actions(svc, "report.filed", out["id"])
    assert submit["actor"] == LEGAL and done["detail"]["external_id"] == out["external_id"]
    assert done["detail"]["files"] == [file_id]
    with pytest.raises(SafeholdError) as e:
        svc.reports.submit(out["id"], LEGAL)
    assert e.value.code == "report.not_submittable"


POINTS = [
    ("leased", 1),
    ("submit:sent", 1),
    ("submit:saved", 1),
    ("upload:started", 1),
    ("upload:sent", 1),
    ("upload:saved", 1),
    ("upload:started", 2),
    ("upload:sent", 2),
    ("upload:saved", 2),
    ("fileinfo:sent", 1),
    ("fileinfo:saved", 1),
    ("fileinfo:sent", 2),
    ("fileinfo:saved", 2),
    ("document:saved", 1),
    ("finish:sent", 1),
]


def test_a_crash_at_any_step_resumes_without_duplicates(svc, cybertip):
    for n, (point, nth) in enumerate(POINTS):
        account = f"crash-{n}"
        report = two_file_report(svc, account)
        dying = Filer(svc.db, svc.audit, svc.evidence, svc.settings, hook=crash_at(point, nth))
        with pytest.raises(Crash):
            dying.file(report["id"])
        assert svc.reports.file_due() == 0  # the dead run's lease still holds it
        lapse_lease(svc, report["id"])
        assert Filer(svc.db, svc.audit, svc.evidence, svc.settings).file(report["id"]) == "finished", point
        assert_filed_once(svc, cybertip, report["id"], account)
        # only an upload whose outcome is unknown makes it retract NCMEC's report and start again
        restarted = bool(audit_actions(svc, "report.restart", report["id"]))
        assert restarted == (point in ("upload:started", "upload:sent")), point


@pytest.mark.parametrize("endpoint", ["submit", "upload", "fileinfo", "finish"])
def test_a_lost_answer_is_resumed_without_duplicates(svc, cybertip, endpoint):
    account = f"lost-{endpoint}"
    report = two_file_report(svc, account)
    cybertip.fail(endpoint, drop=True, after=True)  # processed, but the answer never arrives
    assert svc.reports.filer.file(report["id"]) == "submitted"
    waiting = svc.reports.get(report["id"])
    assert waiting["attempts"] == 1 and waiting["last_error"] and waiting["next_attempt_at"]
    while svc.reports.get(report["id"])["status"] == "submitted":
        svc.reports.file_due()
    assert_filed_once(svc, cybertip, report["id"], account)
    if endpoint == "upload":  # NCMEC may have kept the file: that report was retracted, a new one filed
        assert audit_actions(svc, "report.restart", report["id"])
        assert any(r.retracted for r in about(cybertip, account))


def test_an_expired_report_is_filed_again(svc, cybertip):
    report = two_file_report(svc, "expired")
    with pytest.raises(Crash):
        Filer(svc.db, svc.audit, svc.evidence, svc.settings, hook=crash_at("upload:saved")).file(report["id"])
    first = svc.reports.get(report["id"])["external_id"]
    cybertip.clock.offset = 2 * 3600  # NCMEC deletes an unfinished report an hour after its last change
    lapse_lease(svc, report["id"])
    assert svc.reports.filer.file(report["id"]) == "finished"
    out = svc.reports.get(report["id"])
    assert out["external_id"] != first
    [restart] = audit_actions(svc, "report.restart", report["id"])
    assert restart["detail"]["external_id"] == first
    assert_filed_once(svc, cybertip, report["id"], "expired")


def test_server_errors_are_retried_then_fail(svc, cybertip):
    report = two_file_report(svc, "busy")
    cybertip.fail("submit", code=1000)
    while svc.reports.get(report["id"])["status"] == "submitted":
        svc.reports.file_due()
    assert svc.reports.get(report["id"])["status"] == "finished"
    svc.settings.cybertip_max_attempts = 2
    report = two_file_report(svc, "down")
    cybertip.fail("upload", code=1000, times=100)
    assert svc.reports.filer.file(report["id"]) == "submitted"
    assert svc.reports.get(report["id"])["last_code"] == 1000
    assert svc.reports.filer.file(report["id"]) == "failed"
    out = svc.reports.get(report["id"])
    assert (out["status"], out["attempts"], out["last_code"]) == ("failed", 2, 1000)
    [rec] = audit_actions(svc, "report.failed", report["id"])
    assert rec["detail"]["response_code"] == 1000 and rec["detail"]["attempts"] == 2


@pytest.mark.parametrize(("code", "kind"), [(4100, "cybertip.rejected"), (2000, "cybertip.auth"), (3000, None)])
def test_refusals_fail_at_once(svc, cybertip, code, kind):
    report = two_file_report(svc, f"refused-{code}")
    cybertip.fail("submit", code=code)
    assert svc.reports.filer.file(report["id"]) == "failed"
    out = svc.reports.get(report["id"])
    assert (out["status"], out["attempts"], out["last_code"], out["external_id"]) == ("failed", 1, code, None)
    assert kind is None or out["last_error"].startswith(kind)
    assert audit_actions(svc, "report.failed", report["id"])
    # fixed (here: nothing to fix), it is submitted again and filed
    assert svc.reports.submit(report["id"], LEGAL, wait=True)["status"] == "finished"


def test_a_failed_report_edited_after_opening_is_filed_afresh(svc, cybertip):
    report = two_file_report(svc, "edited")
    cybertip.fail("fileinfo", code=4100)
    assert svc.reports.filer.file(report["id"]) == "failed"
    first = svc.reports.get(report["id"])["external_id"]
    svc.reports.update(report["id"], {"additional_info": "Corrected."}, LEGAL)
    out = svc.reports.submit(report["id"], LEGAL, wait=True)
    assert out["status"] == "finished" and out["external_id"] != first
    assert cybertip.reports[first].retracted  # what NCMEC had was the old content: withdrawn
    assert b"Corrected." in as_bytes(cybertip.reports[out["external_id"]].xml)
    assert_filed_once(svc, cybertip, report["id"], "edited")


def test_viewed_flags_come_from_the_audit_log(svc, cybertip):
    from tests.review.helpers import media_case

    seen, seen_item = confirmed_case(svc, 1, known=False, content_id="c-1", account_id="viewer")
    unseen, _ = confirmed_case(svc, 2, known=False, content_id="c-2", account_id="viewer")
    exif, exif_item = confirmed_case(svc, 3, known=False, content_id="c-3", account_id="viewer")
    svc.review.reveal(seen_item, ALICE)
    svc.review.exif(exif_item, BOB)
    # a reveal of the same picture in another case counts: it is the same file
    _, twin_item = media_case(svc, 4, data=jpeg(3), content_id="c-4", account_id="someone-else")
    svc.review.reveal(twin_item, BOB)
    report = svc.reports.draft_from_case(seen, LEGAL)
    for case_id in (unseen, exif):
        svc.reports.draft_from_case(case_id, LEGAL)
    files = svc.reports.get(report["id"])["files"]
    flags = {f["case_item_id"]: (f["viewed_by_esp"], f["exif_viewed_by_esp"]) for f in files}
    assert flags[seen_item] == (True, False) and flags[exif_item] == (True, True)
    assert sorted(flags.values()).count((False, False)) == 1
    out = svc.reports.submit(report["id"], LEGAL, wait=True)
    by_item = {f["case_item_id"]: f for f in out["files"]}
    assert [v["actor"] for v in by_item[seen_item]["viewed"]["reveals"]] == [ALICE.label]
    assert [v["actor"] for v in by_item[exif_item]["viewed"]["exif_views"]] == [BOB.label]
    filed = cybertip.reports[out["external_id"]]
    details = {md5: as_bytes(d) for _, md5, _, d in filed.files.values()}
    seen_details = details[svc.cases.item(seen_item)["md5"]]
    assert b"<fileViewedByEsp>true</fileViewedByEsp><exifViewedByEsp>false</exifViewedByEsp>" in seen_details.replace(
        b"\n", b""
    ).replace(b" ", b"")
    # flags are frozen as filed: a later reveal does not change the record
    svc.review.reveal(by_item[next(i for i in by_item if i not in (seen_item, exif_item))]["case_item_id"], ALICE)
    assert svc.reports.get(out["id"])["files"] == out["files"]


def test_only_the_lease_holder_files(svc, cybertip):
    report = two_file_report(svc, "leased")
    with svc.db.session() as s:  # another process's run holds it
        s.execute(update(Report).where(Report.id == report["id"])
                  .values(lease_owner="other", lease_until=utcnow() + dt.timedelta(minutes=5)))  # fmt: skip
    assert svc.reports.filer.file(report["id"]) is None and svc.reports.file_due() == 0
    assert about(cybertip, "leased") == []
    lapse_lease(svc, report["id"])

    def steal(point: str) -> None:  # our lease lapses mid-run and another run takes the report over
        if point == "submit:saved":
            with svc.db.session() as s:
                s.execute(update(Report).where(Report.id == report["id"]).values(lease_owner="thief"))

    assert Filer(svc.db, svc.audit, svc.evidence, svc.settings, hook=steal).file(report["id"]) is None
    [opened] = about(cybertip, "leased")
    assert opened.files == {} and not opened.finished  # it stopped at its next write: nothing uploaded
    out = svc.reports.get(report["id"])
    assert out["status"] == "submitted" and cybertip.reports[out["external_id"]] is opened
