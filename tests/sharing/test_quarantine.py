"""False-positive controls: match statistics per entry and source, the flood quarantine, its release, FP rates."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import func, select

from safehold.cases.detection import Detection
from safehold.errors import SafeholdError
from safehold.pipeline.service import Submission
from safehold.store.models import AuditRecord, EntryMatchCount, utcnow
from tests.review.helpers import ALICE

SOURCE = "list-x"


def md5(n: int) -> str:
    return hashlib.md5(f"benign-{n}".encode()).hexdigest()


@pytest.fixture
def auto_bank(svc):
    return make_auto_bank(svc)


def make_auto_bank(svc):
    """An ``auto`` bank of five entries from one source, with an automatic policy; the flood floor lowered to 5."""
    svc.settings.flood_min_matches = 5
    svc.settings.flood_factor = 10.0
    svc.banks.create("shared", on_match="auto", created_by="test")
    svc.actions.create_policy("shared-auto", "auto", {"bank": "shared"}, ["block_content"], actor="test")
    ids = [svc.banks.add_hash("shared", "md5", md5(n), source=SOURCE, category="A2")["id"] for n in range(5)]
    return svc, ids


def scan(svc, n: int, times: int = 1) -> None:
    for _ in range(times):
        assert svc.scans.scan_hash("md5", md5(n)).verdict == "match"


def submit(svc, n: int, content_id: str) -> dict:
    """What a platform's upload of content matching entry ``n`` becomes: its case, as the reviewer sees it."""
    sub = Submission(Detection(source="event", content_id=content_id), scans=[svc.scans.scan_hash("md5", md5(n))])
    out = svc.pipeline.submit(sub, key=f"t:{content_id}", digest="d", actor="test", answer=lambda ref: {"id": ref.id})
    return svc.cases.get(out["id"])


def audit(svc, action: str) -> list[AuditRecord]:
    with svc.db.session() as s:
        return s.scalars(select(AuditRecord).where(AuditRecord.action == action)).all()


def test_each_match_is_counted_once_and_written_only_by_the_flush(auto_bank):
    svc, ids = auto_bank
    scan(svc, 0, times=3)
    assert svc.scans.scan_hash("md5", md5(99)).verdict == "no_match"
    with svc.db.session() as s:  # nothing written on the match path
        assert s.scalar(select(func.count()).select_from(EntryMatchCount)) == 0
    svc.scans.flush_counts()
    scan(svc, 0)
    svc.scans.flush_counts()  # the same hour's row gains the second flush's count
    with svc.db.session() as s:
        rows = s.execute(select(EntryMatchCount.entry_id, EntryMatchCount.count)).all()
    assert rows == [(ids[0], 4)]
    stats = svc.quarantine.entry_stats(ids[0])
    assert stats["matches"] == 4 and stats["window_matches"] == 4
    assert stats["per_day"] == [{"day": utcnow().date().isoformat(), "matches": 4}]
    assert stats["first_match_at"] <= stats["last_match_at"]
    assert svc.quarantine.entry_stats(ids[1])["matches"] == 0


def test_counts_the_database_refused_are_kept_for_the_next_flush(auto_bank, monkeypatch):
    svc, ids = auto_bank
    scan(svc, 0, times=2)
    with monkeypatch.context() as m:
        m.setattr(svc.scans.entry_matches.db, "session", lambda: (_ for _ in ()).throw(RuntimeError("down")))
        with pytest.raises(RuntimeError):
            svc.scans.entry_matches.flush()
    scan(svc, 0)
    svc.scans.flush_counts()
    assert svc.quarantine.entry_stats(ids[0])["matches"] == 3


def test_a_flooding_entry_is_quarantined_and_its_matches_go_to_review_only(auto_bank):
    svc, ids = auto_bank
    for n in (1, 2, 3):
        scan(svc, n)
    scan(svc, 0, times=20)
    svc.scans.flush_counts()
    [quarantined] = svc.quarantine.check(utcnow())
    reason = quarantined["quarantine"]["reason"]
    assert quarantined["id"] == ids[0]
    assert reason["matches"] == 20 and reason["peer_median"] == 1 and reason["active_peers"] == 3
    assert reason["threshold"] == 10 and reason["bank"] == "shared" and reason["source"] == SOURCE
    assert "20 matches in the last 24 h" in reason["message"]
    assert [r.target for r in audit(svc, "entry.quarantine")] == [f"entry:{ids[0]}"]
    assert svc.quarantine.check(utcnow()) == []  # already quarantined: once

    flooded = submit(svc, 0, "c-flood")  # a case for review, the reason on its signal, no automatic action
    assert flooded["status"] == "open" and flooded["actions"] == []
    assert {s["detail"]["quarantine"]["reason"]["rule"] for s in flooded["signals"]} == {"flood"}
    normal = submit(svc, 1, "c-normal")  # a peer still acts automatically
    assert [(a["kind"], a["policy"]) for a in normal["actions"]] == [("block_content", "shared-auto")]
    assert normal["signals"][0]["detail"].get("quarantine") is None
    assert [e["id"] for e in svc.quarantine.quarantined()] == [ids[0]]


def test_no_false_alarm_when_the_whole_bank_is_busy(auto_bank):
    svc, ids = auto_bank
    for n, times in enumerate((40, 30, 25, 30, 35)):
        scan(svc, n, times)
    svc.scans.flush_counts()
    assert svc.quarantine.check(utcnow()) == []
    # One entry busier than the rest (100 against a median of 30) is still under 10 × 30.
    scan(svc, 0, times=60)
    svc.scans.flush_counts()
    assert svc.quarantine.check(utcnow()) == []
    # And below the floor nothing is quarantined, however silent the peers: 9 matches against none.
    svc.banks.create("quiet", on_match="auto", created_by="test")
    lone = svc.banks.add_hash("quiet", "md5", md5(80), source=SOURCE)["id"]
    svc.banks.add_hash("quiet", "md5", md5(81), source=SOURCE)
    svc.settings.flood_min_matches = 10
    svc.scans.entry_matches.add([lone] * 9)
    svc.scans.flush_counts()
    assert svc.quarantine.check(utcnow()) == []


def test_allow_banks_and_other_sources_are_not_peers(auto_bank):
    svc, ids = auto_bank
    other = svc.banks.add_hash("shared", "md5", md5(50), source="list-y")["id"]
    svc.banks.create("known-fine", kind="allow", created_by="test")
    svc.banks.add_hash("known-fine", "md5", md5(60))
    for n in (1, 2, 3):
        scan(svc, n, times=20)  # busy peers of list-x
    svc.scans.entry_matches.add([other] * 20)
    for _ in range(30):  # an allow bank's entry acts on nothing: never quarantined
        assert svc.scans.scan_hash("md5", md5(60)).verdict == "allowlisted"
    svc.scans.flush_counts()
    assert [e["id"] for e in svc.quarantine.check(utcnow())] == [other]  # alone in its source: the floor rules


def test_release_is_audited_and_followed_by_a_cool_down(auto_bank):
    svc, ids = auto_bank
    scan(svc, 0, times=20)
    svc.scans.flush_counts()
    now = utcnow()
    assert len(svc.quarantine.check(now)) == 1
    released = svc.quarantine.release(ids[0], "user:operator")
    assert released["quarantine"] is None
    [record] = audit(svc, "entry.quarantine_release")
    assert record.actor == "user:operator" and record.detail["reason"]["matches"] == 20
    with pytest.raises(SafeholdError) as err:
        svc.quarantine.release(ids[0], "user:operator")
    assert err.value.code == "quarantine.not_quarantined"
    assert svc.quarantine.check(now) == []  # the same window: the release holds
    assert submit(svc, 0, "c-released")["actions"] != []  # automatic again
    later = now + dt.timedelta(hours=25)
    svc.scans.entry_matches.add([ids[0]] * 30, at=later)
    svc.scans.flush_counts()
    assert [e["id"] for e in svc.quarantine.check(later)] == [ids[0]]  # a new window, a new flood


def test_a_disabled_entry_is_not_quarantined(auto_bank):
    svc, ids = auto_bank
    scan(svc, 0, times=20)
    svc.scans.flush_counts()
    svc.banks.set_entry_enabled(ids[0], False, actor="test")
    assert svc.quarantine.check(utcnow()) == []


def test_false_positive_rate_per_entry_and_source_from_decisions(auto_bank):
    svc, ids = auto_bank
    svc.banks.update("shared", on_match="case", actor="test")
    svc.banks.create("own", created_by="test")
    own = svc.banks.add_hash("own", "md5", md5(70), category="A1")["id"]
    decisions = [(0, "not_violating"), (0, "not_violating"), (0, "csam"), (1, "csam"), (2, "escalate")]
    for i, (n, decision) in enumerate(decisions):
        case_id = submit(svc, n, f"c{i}")["id"]
        svc.cases.claim(case_id, ALICE.label)
        svc.review.decide(case_id, ALICE, decision, "A1" if decision == "csam" else None)
    submit(svc, 70, "c-own")  # undecided: no outcome yet
    svc.scans.flush_counts()  # statistics are as of the last flush (the counters task: every half second)
    stats = svc.quarantine.entry_stats(ids[0])
    assert (stats["true_positives"], stats["false_positives"], stats["false_positive_rate"]) == (1, 2, 0.6667)
    assert svc.quarantine.entry_stats(ids[2])["false_positive_rate"] is None  # escalated: not closed
    assert svc.quarantine.entry_stats(own)["false_positive_rate"] is None
    by_source = {(g["bank"], g["source"]): g for g in svc.quarantine.source_stats()}
    shared = by_source[("shared", SOURCE)]
    assert shared["entries"] == 5 and shared["quarantined"] == 0 and shared["matches"] == 5
    assert (shared["true_positives"], shared["false_positives"], shared["false_positive_rate"]) == (2, 2, 0.5)
    assert by_source[("own", None)]["matches"] == 1 and by_source[("own", None)]["false_positive_rate"] is None


def test_api_lists_shows_and_releases(auto_bank, client, keys):
    svc, ids = auto_bank
    scan(svc, 0, times=20)
    svc.scans.flush_counts()
    svc.quarantine.check(utcnow())
    listed = client.get("/v1/quarantine", headers=keys["reviewer"]).json()["entries"]
    assert [e["id"] for e in listed] == [ids[0]] and listed[0]["quarantine"]["reason"]["rule"] == "flood"
    stats = client.get(f"/v1/entries/{ids[0]}/stats?days=7", headers=keys["reviewer"]).json()
    assert stats["matches"] == 20 and stats["entry"]["quarantine"] is not None
    sources = client.get("/v1/sharing/stats", headers=keys["reviewer"]).json()["sources"]
    assert [(g["bank"], g["source"], g["quarantined"]) for g in sources] == [("shared", SOURCE, 1)]
    assert client.get("/v1/entries/9999/stats", headers=keys["admin"]).json()["error"]["code"] == "entry.not_found"
    assert client.get("/v1/sharing/stats?days=0", headers=keys["admin"]).status_code == 422
    assert client.post(f"/v1/quarantine/{ids[0]}/release", headers=keys["reviewer"]).status_code == 403
    answer = client.post(f"/v1/quarantine/{ids[0]}/release", headers=keys["admin"])
    assert answer.status_code == 200 and answer.json()["quarantine"] is None
    again = client.post(f"/v1/quarantine/{ids[0]}/release", headers=keys["admin"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "quarantine.not_quarantined"


def test_cli_lists_releases_and_shows_stats(auto_bank, cli):
    svc, ids = auto_bank
    scan(svc, 0, times=20)
    svc.scans.flush_counts()
    svc.quarantine.check(utcnow())
    listed = cli("bank", "quarantine", "list", "--json").output
    assert '"rule": "flood"' in listed and f'"id": {ids[0]}' in listed
    assert "shared" in cli("bank", "stats").output
    assert "20 matches" in cli("bank", "stats", "--entry", ids[0]).output
    assert "released" in cli("bank", "quarantine", "release", ids[0]).output
    assert "quarantine.not_quarantined" in cli("bank", "quarantine", "release", ids[0], code=2).output
    assert [r.actor for r in audit(svc, "entry.quarantine_release")] == ["cli"]
