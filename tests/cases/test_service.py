"""Cases: one open case per subject (even under concurrency), ranking, lists, claims, SLA."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select, update

from safehold.cases.service import Detection, DetectionSignal, close
from safehold.errors import SafeholdError
from safehold.store.models import Case, CaseSignal, utcnow
from safehold.store.vault import StoredMedia

ACTOR = "apikey:platform"


def match(category="A1", confidence=1.0, **kw) -> DetectionSignal:
    return DetectionSignal(
        "hash_match", signal_type="md5", value="0" * 32, bank="known", category=category, confidence=confidence, **kw
    )


def report(category="other", confidence=0.5) -> DetectionSignal:
    return DetectionSignal("user_report", category=category, confidence=confidence)


def detect(source="hash_match", signals=None, **kw) -> Detection:
    return Detection(source=source, signals=signals if signals is not None else [match()], **kw)


def set_case(svc, case_id, **values):
    with svc.db.session() as s:
        s.execute(update(Case).where(Case.id == case_id).values(**values))


def test_record_opens_then_updates_the_subjects_case(svc):
    first = svc.cases.record(
        detect(content_id="c1", account_id="a1", metadata={"ip_events": [{"ip": "192.0.2.1"}], "tier": "free"}),
        ACTOR,
    )
    assert first.created and first.status == "open" and first.band == "P1" and first.priority == 1.0
    media = StoredMedia("ab" * 32, "cd" * 16, 123)
    again = svc.cases.record(
        detect(
            "user_report",
            [report("A2", 0.2)],
            content_id="c1",
            media=media,
            media_type="image",
            metadata={"ip_events": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}], "tier": "paid"},
        ),
        ACTOR,
    )
    assert again.id == first.id and not again.created
    case = svc.cases.get(first.id)
    assert case["source"] == "hash_match" and case["queue"] == "media" and case["known_match"] is False
    assert (case["category"], case["severity"], case["confidence"]) == ("A1", 1.0, 1.0)
    assert case["priority"] >= 1.0 and case["band"] == "P1"
    assert case["metadata"] == {"ip_events": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}], "tier": "paid"}
    # The same content is one item, filled in with the media that came later.
    assert len(case["items"]) == 1
    item = case["items"][0]
    assert item["content_id"] == "c1" and item["has_media"] and item["sha256"] == media.sha256
    assert item["size"] == 123 and item["media_type"] == "image"
    assert [s["source"] for s in case["signals"]] == ["hash_match", "user_report"]
    assert all(s["item_id"] == item["id"] for s in case["signals"])
    assert [h["action"] for h in case["history"]] == ["case.open", "case.update"]
    assert case["history"][0]["detail"]["subject"] == "content:c1"
    assert svc.cases.item(item["id"])["case_id"] == first.id
    with pytest.raises(SafeholdError) as e:
        svc.cases.item(999)
    assert e.value.code == "case.item_not_found"


def test_priority_only_goes_up_while_open(svc):
    ref = svc.cases.record(
        detect("classifier", [DetectionSignal("classifier", category="csam", confidence=1.0)], content_id="c"), ACTOR
    )
    assert ref.priority == pytest.approx(0.8) and ref.band == "P1"
    # A more severe but much less confident signal would score lower: the case keeps its rank.
    ref = svc.cases.record(
        detect("classifier", [DetectionSignal("classifier", category="A1", confidence=0.3)], content_id="c"), ACTOR
    )
    case = svc.cases.get(ref.id)
    assert case["category"] == "A1" and case["confidence"] == 0.3
    assert case["priority"] >= 0.8 and case["band"] == "P1"


SUBJECTS_AND_QUEUES = [
    (detect("user_report", [report()], account_id="u1"), "account:u1", "report"),
    (
        detect("grooming", [DetectionSignal("grooming", category="grooming")], content_id="m1", text="hi"),
        "content:m1",
        "text",
    ),
    (
        detect("livestream", [DetectionSignal("livestream", category="livestream")], content_id="l1"),
        "content:l1",
        "live",
    ),
    (detect("event", [report()], account_id="u2"), "account:u2", "account"),
    (detect("event", [report()], content_id="t1", text="words"), "content:t1", "text"),
]


def test_subject_and_queue(svc):
    for detection, subject, queue in SUBJECTS_AND_QUEUES:
        case = svc.cases.get(svc.cases.record(detection, ACTOR).id)
        assert case["queue"] == queue and case["history"][0]["detail"]["subject"] == subject, subject


def test_invalid_detections(svc):
    for bad, code in [
        (detect(content_id="x", signals=[]), "case.no_signals"),
        (detect(signals=[report()]), "case.no_subject"),
        # Media or a hash alone is no subject: nobody could act on such a case (docs/cases.md).
        (detect(media=StoredMedia("ef" * 32, "00" * 16, 5)), "case.no_subject"),
        (detect(signals=[match()]), "case.no_subject"),
        (detect("nonsense", content_id="x"), "case.invalid_source"),
        (detect(content_id="x", signals=[report(confidence=1.5)]), "case.invalid_confidence"),
    ]:
        with pytest.raises(SafeholdError) as e:
            svc.cases.record(bad, ACTOR)
        assert e.value.code == code


def test_concurrent_detections_open_one_case(svc):
    n = 8
    barrier = threading.Barrier(n)
    errors, refs = [], []

    def go(i):
        try:
            barrier.wait(timeout=10)
            refs.append(
                svc.cases.record(detect("user_report", [report(confidence=0.1 + i / 20)], content_id="hot"), ACTOR)
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len({r.id for r in refs}) == 1 and sum(r.created for r in refs) == 1
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 1
        assert s.scalar(select(func.count()).select_from(CaseSignal)) == n
    case = svc.cases.get(refs[0].id)
    assert case["confidence"] == pytest.approx(0.1 + (n - 1) / 20)
    assert svc.audit.verify().ok


def test_closed_case_frees_its_subject(svc):
    first = svc.cases.record(detect(content_id="c"), ACTOR)
    with svc.db.session() as s:
        close(s.get(Case, first.id))
    second = svc.cases.record(detect(content_id="c"), ACTOR)
    assert second.created and second.id != first.id
    # A case closed without giving its key back (a bug elsewhere) does not block its subject for ever.
    set_case(svc, second.id, status="closed")
    third = svc.cases.record(detect(content_id="c"), ACTOR)
    assert third.created and third.id not in (first.id, second.id)


def test_attach_only_joins_an_open_case(svc):
    lone = Detection(source="event", account_id="acc", metadata={"ip_events": [{"ip": "198.51.100.1"}]})
    assert svc.cases.attach(lone, ACTOR) is None
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0
    ref = svc.cases.record(detect("user_report", [report()], account_id="acc"), ACTOR)
    joined = svc.cases.attach(lone, ACTOR)
    assert joined.id == ref.id and not joined.created
    case = svc.cases.get(ref.id)
    assert case["metadata"]["ip_events"] == [{"ip": "198.51.100.1"}] and len(case["signals"]) == 1
    assert case["history"][-1]["action"] == "case.update" and case["history"][-1]["detail"]["signals"] == 0


def test_get_related_and_missing(svc):
    a = svc.cases.record(detect(content_id="c1", account_id="acc"), ACTOR)
    b = svc.cases.record(detect("user_report", [report()], content_id="c2", account_id="acc"), ACTOR)
    svc.cases.record(detect(content_id="c3", account_id="other"), ACTOR)
    related = svc.cases.get(a.id)["related"]
    assert [r["id"] for r in related] == [b.id] and related[0]["status"] == "open"
    assert set(svc.cases.get(a.id)) >= {"items", "signals", "decisions", "actions", "history", "related", "due_at"}
    with pytest.raises(SafeholdError) as e:
        svc.cases.get(12345)
    assert e.value.code == "case.not_found" and e.value.status == 404


@pytest.mark.parametrize("batch", [500, 1])
def test_history_holds_the_cases_items_records_in_log_order(svc, monkeypatch, batch):
    monkeypatch.setattr("safehold.cases.service.HISTORY_BATCH", batch)  # 1: every target in its own query
    ref = svc.cases.record(detect(content_id="c1", account_id="acc"), ACTOR)
    other = svc.cases.record(detect(content_id="c2", account_id="other"), ACTOR)
    item = svc.cases.get(ref.id)["items"][0]["id"]
    other_item = svc.cases.get(other.id)["items"][0]["id"]
    svc.cases.claim(ref.id, "user:rita")
    svc.audit.record(None, "user:rita", "media.reveal", f"case_item:{item}", {"case_id": ref.id})
    svc.audit.record(None, "user:sam", "media.reveal", f"case_item:{other_item}", {"case_id": other.id})
    svc.audit.record(None, "user:rita", "media.exif_view", f"case_item:{item}", {"case_id": ref.id})
    svc.cases.release(ref.id, "user:rita")
    history = svc.cases.get(ref.id)["history"]
    assert [h["seq"] for h in history] == sorted(h["seq"] for h in history)
    mine = [(h["action"], h["target"]) for h in history if h["actor"] == "user:rita"]
    assert mine[1:3] == [("media.reveal", f"case_item:{item}"), ("media.exif_view", f"case_item:{item}")]
    assert mine[0][1] == mine[-1][1] == f"case:{ref.id}"  # the claim before, the release after
    assert all(h["actor"] != "user:sam" for h in history)  # another case's item is not in this history


def test_list_order_filters_and_counts(svc):
    low = svc.cases.record(detect("user_report", [report("other", 0.5)], content_id="low"), ACTOR)
    high = svc.cases.record(detect(content_id="high", account_id="acc"), ACTOR)
    mid = svc.cases.record(
        detect("grooming", [DetectionSignal("grooming", category="grooming")], content_id="mid", text="t"), ACTOR
    )
    done = svc.cases.record(detect(content_id="done"), ACTOR)
    with svc.db.session() as s:
        close(s.get(Case, done.id))
    page = svc.cases.list()
    assert [c["id"] for c in page["cases"]] == [high.id, mid.id, low.id] and page["total"] == 3
    assert [c["id"] for c in svc.cases.list(status="all")["cases"]][:2] == [high.id, done.id]
    assert svc.cases.list(status="closed")["total"] == 1
    assert [c["id"] for c in svc.cases.list(queue="text")["cases"]] == [mid.id]
    assert [c["id"] for c in svc.cases.list(band="P4")["cases"]] == [low.id]
    assert [c["id"] for c in svc.cases.list(account_id="acc")["cases"]] == [high.id]
    assert svc.cases.list(limit=1, offset=1)["cases"][0]["id"] == mid.id
    set_case(svc, low.id, due_at=utcnow() - dt.timedelta(minutes=1))
    overdue = svc.cases.list(overdue=True)["cases"]
    assert [c["id"] for c in overdue] == [low.id] and overdue[0]["overdue"]
    svc.cases.claim(mid.id, "user:ann")
    assert [c["id"] for c in svc.cases.list(claimed_by="user:ann")["cases"]] == [mid.id]
    counts = svc.cases.counts()
    assert counts["by_queue"] == {"media": 1, "text": 1, "report": 1, "live": 0, "account": 0}
    assert counts["by_band"] == {"P0": 0, "P1": 1, "P2": 1, "P3": 0, "P4": 1}
    assert counts["overdue"] == 1 and counts["awaiting_confirmation"] == counts["escalated"] == 0
    for bad in ({"status": "nope"}, {"queue": "x"}, {"band": "P9"}):
        with pytest.raises(SafeholdError) as e:
            svc.cases.list(**bad)
        assert e.value.code == "case.invalid_filter"
    with pytest.raises(SafeholdError):
        svc.cases.list(limit=0)


def test_claims(svc):
    case_id = svc.cases.record(detect(content_id="c"), ACTOR).id
    claimed = svc.cases.claim(case_id, "user:ann")
    assert claimed["claimed_by"] == "user:ann" and claimed["claim_expires_at"]
    renewed = svc.cases.claim(case_id, "user:ann")
    assert renewed["claim_expires_at"] >= claimed["claim_expires_at"]
    with pytest.raises(SafeholdError) as e:
        svc.cases.claim(case_id, "user:bob")
    assert e.value.code == "case.claimed" and e.value.status == 409 and e.value.detail["claimed_by"] == "user:ann"
    with pytest.raises(SafeholdError) as e:
        svc.cases.release(case_id, "user:bob")
    assert e.value.code == "case.claimed"
    assert svc.cases.claim(case_id, "user:sen", override=True)["claimed_by"] == "user:sen"
    assert svc.cases.release(case_id, "user:sen")["claimed_by"] is None
    assert svc.cases.release(case_id, "user:sen")["claimed_by"] is None  # releasing nothing is a no-op
    # A lapsed claim is free for anyone, and shows as no claim.
    svc.cases.claim(case_id, "user:ann")
    set_case(svc, case_id, claim_expires_at=utcnow() - dt.timedelta(seconds=1))
    assert svc.cases.list()["cases"][0]["claimed_by"] is None
    assert svc.cases.claim(case_id, "user:bob")["claimed_by"] == "user:bob"
    svc.cases.release(case_id, "user:ann", override=True)
    actions = [h["action"] for h in svc.cases.get(case_id)["history"]]
    assert actions == [
        "case.open",
        "case.claim",
        "case.claim",
        "case.claim_override",
        "case.release",
        "case.claim",
        "case.claim",
        "case.release",
    ]
    with pytest.raises(SafeholdError) as e:
        svc.cases.claim(999, "user:ann")
    assert e.value.code == "case.not_found"
    with svc.db.session() as s:
        close(s.get(Case, case_id))
    with pytest.raises(SafeholdError) as e:
        svc.cases.claim(case_id, "user:ann")
    assert e.value.code == "case.closed"


def test_locked_for(svc):
    case_id = svc.cases.record(detect(content_id="c"), ACTOR).id

    def lock(actor, **kw):
        with svc.db.session() as s:
            return svc.cases.locked_for(s, case_id, actor, **kw).id

    with pytest.raises(SafeholdError) as e:
        lock("user:ann")
    assert e.value.code == "case.not_claimed"
    svc.cases.claim(case_id, "user:ann")
    assert lock("user:ann") == case_id
    with pytest.raises(SafeholdError) as e:
        lock("user:bob")
    assert e.value.code == "case.claimed"
    assert lock("user:bob", override=True) == case_id
    set_case(svc, case_id, claim_expires_at=utcnow() - dt.timedelta(seconds=1))
    with pytest.raises(SafeholdError) as e:
        lock("user:ann")
    assert e.value.code == "case.not_claimed"
    set_case(svc, case_id, status="closed", open_key=None)
    with pytest.raises(SafeholdError) as e:
        lock("user:ann", override=True)
    assert e.value.code == "case.closed"


def test_refresh_raises_priorities_as_cases_age(svc):
    ref = svc.cases.record(detect("user_report", [report("other", 1.0)], content_id="old"), ACTOR)
    assert ref.band == "P3"
    fresh = svc.cases.record(detect(content_id="fresh"), ACTOR)
    opened = dt.datetime.fromisoformat(svc.cases.get(ref.id)["opened_at"])
    assert svc.cases.refresh_priorities(opened) == 0  # nothing changed: nothing written
    assert svc.cases.refresh_priorities(opened + dt.timedelta(hours=72)) == 2
    case = svc.cases.get(ref.id)
    assert case["priority"] == pytest.approx(0.6) and case["band"] == "P2"
    assert case["due_at"] == (opened + dt.timedelta(hours=24)).isoformat()
    assert svc.cases.get(fresh.id)["priority"] == pytest.approx(1.5)
    # Without ``now`` it runs at most once a minute.
    svc.cases.refresh_priorities()
    assert svc.cases.refresh_priorities() == 0
    # A band raised elsewhere (an escalation) is never lowered by a refresh.
    set_case(svc, ref.id, band="P1")
    svc.cases.refresh_priorities(opened + dt.timedelta(hours=80))
    case = svc.cases.get(ref.id)
    assert case["band"] == "P1" and case["due_at"] == (opened + dt.timedelta(hours=4)).isoformat()


def test_sla_settings(svc):
    assert svc.cases.sla_hours() == {"P0": 1, "P1": 4, "P2": 24, "P3": 72, "P4": 168}
    ref = svc.cases.record(detect(content_id="c"), ACTOR)
    opened = dt.datetime.fromisoformat(svc.cases.get(ref.id)["opened_at"])
    assert svc.cases.set_sla_hours({"P1": 1.5}, "user:admin") == {"P0": 1, "P1": 1.5, "P2": 24, "P3": 72, "P4": 168}
    assert svc.cases.sla_hours()["P1"] == 1.5
    assert svc.cases.get(ref.id)["due_at"] == (opened + dt.timedelta(hours=1.5)).isoformat()
    new = svc.cases.record(detect(content_id="d"), ACTOR)
    case = svc.cases.get(new.id)
    assert dt.datetime.fromisoformat(case["due_at"]) - dt.datetime.fromisoformat(case["opened_at"]) == dt.timedelta(
        hours=1.5
    )
    with pytest.raises(SafeholdError) as e:
        svc.cases.set_sla_hours({"P1": 0}, "user:admin")
    assert e.value.code == "settings.invalid_sla"
    records = svc.audit.list(action="settings.update")
    assert len(records) == 1 and records[0]["target"] == "setting:sla_hours"
    assert records[0]["detail"]["old"]["P1"] == 4 and records[0]["detail"]["new"]["P1"] == 1.5


def test_urgent_case_stays_p0_with_its_sla_as_it_ages(svc):
    minor = DetectionSignal(
        "grooming", category="grooming", confidence=0.75, detail={"level": "high", "minor_at_risk": True}
    )
    ref = svc.cases.record(detect("grooming", [minor], content_id="conv"), ACTOR)
    assert ref.band == "P0"
    later = utcnow() + dt.timedelta(days=5)
    svc.cases.refresh_priorities(later)
    case = svc.cases.get(ref.id)
    opened, due = (dt.datetime.fromisoformat(case[k]) for k in ("opened_at", "due_at"))
    assert case["band"] == "P0" and due - opened == dt.timedelta(hours=1)
    # A later, weaker signal never demotes it; the list puts it first.
    svc.cases.record(detect(content_id="conv", signals=[report()]), ACTOR)
    svc.cases.record(detect(content_id="a1", signals=[match()]), ACTOR)
    assert [c["id"] for c in svc.cases.list()["cases"]][0] == ref.id
    assert svc.cases.get(ref.id)["band"] == "P0"
