"""Event ingest: idempotency per caller, what opens a case, what media is kept, the automatic path."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading

import pytest
from sqlalchemy import func, select

from safehold.auth.apikeys import Principal
from safehold.errors import SafeholdError
from safehold.pipeline.service import match_confidence
from safehold.scanning.service import Match
from safehold.store.models import Case, IngestedEvent
from tests.media import jpeg, variant

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")
OTHER = Principal(name="platform-2", role="platform", key_prefix="sh_two")
KNOWN = jpeg(7)


@pytest.fixture
def banked(svc):
    svc.banks.create("known", created_by="test")
    svc.banks.add_file("known", KNOWN, filename="known.jpg", category="A1", external_id="x-7")
    return svc


def content(cid="c1", **kw) -> dict:
    return {"type": "content", "content": {"id": cid, **kw}}


def count(svc, model) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_matching_file_opens_a_case_and_keeps_the_media(banked):
    svc = banked
    body = {**content(uploaded_at="2026-01-02T03:04:05"), "account": {"id": "u1", "metadata": {"age_days": 3}}}
    body["ip_events"] = [{"ip": "192.0.2.7", "type": "upload", "at": "2026-01-02T03:04:05Z", "port": 443}]
    out = svc.events.ingest(PLATFORM, body, file=KNOWN, filename="up.jpg", idempotency_key="k1")
    assert out["accepted"] and not out["duplicate"] and out["scan"]["verdict"] == "match"
    [ref] = out["cases"]
    assert ref["created"] and ref["band"] == "P1" and ref["status"] == "open"
    case = svc.cases.get(ref["id"])
    assert case["known_match"] and case["source"] == "hash_match" and case["account_id"] == "u1"
    assert case["metadata"] == {
        "account": {"age_days": 3},
        "ip_events": [{"ip": "192.0.2.7", "type": "upload", "at": "2026-01-02T03:04:05+00:00", "port": 443}],
    }
    [item] = case["items"]
    sha = hashlib.sha256(KNOWN).hexdigest()
    assert item["has_media"] and item["sha256"] == sha and item["media_type"] == "image"
    assert item["filename"] == "up.jpg" and item["uploaded_at"] == "2026-01-02T03:04:05+00:00"
    assert svc.vault.get(sha) == KNOWN
    signals = case["signals"]
    assert {s["signal_type"] for s in signals} == {"pdq", "md5"}
    assert all(s["bank"] == "known" and s["category"] == "A1" and s["confidence"] == 1.0 for s in signals)
    assert all(s["detail"]["external_id"] == "x-7" and s["entry_id"] for s in signals)


def test_idempotency_is_per_caller_and_per_body(banked):
    svc = banked
    body = {**content(), "signals": [{"source": "classifier", "category": "csam", "confidence": 0.9}]}
    first = svc.events.ingest(PLATFORM, body, idempotency_key="same")
    again = svc.events.ingest(PLATFORM, dict(reversed(list(body.items()))), idempotency_key="same")
    assert again == {**first, "duplicate": True}
    assert svc.cases.get(first["cases"][0]["id"])["signals"].__len__() == 1
    # The key may come in the body instead of the header; it is not part of "the same body".
    assert svc.events.ingest(PLATFORM, {**body, "idempotency_key": "same"})["duplicate"]
    with pytest.raises(SafeholdError) as e:
        svc.events.ingest(PLATFORM, content("c2"), idempotency_key="same")
    assert e.value.code == "event.idempotency_conflict" and e.value.status == 409
    with pytest.raises(SafeholdError) as e:
        svc.events.ingest(PLATFORM, body, file=KNOWN, idempotency_key="same")
    assert e.value.code == "event.idempotency_conflict"
    # Another platform's identical key is its own.
    other = svc.events.ingest(OTHER, body, idempotency_key="same")
    assert not other["duplicate"] and other["cases"][0]["id"] == first["cases"][0]["id"]
    assert not other["cases"][0]["created"]


def test_key_rules(banked):
    svc = banked
    for kwargs, code in [
        ({}, "event.missing_idempotency_key"),
        ({"idempotency_key": "x" * 129}, "event.invalid_idempotency_key"),
        ({"idempotency_key": "bad\nkey"}, "event.invalid_idempotency_key"),
    ]:
        with pytest.raises(SafeholdError) as e:
            svc.events.ingest(PLATFORM, content(), **kwargs)
        assert e.value.code == code
    with pytest.raises(SafeholdError) as e:
        svc.events.ingest(PLATFORM, {**content(), "idempotency_key": "a"}, idempotency_key="b")
    assert e.value.code == "event.idempotency_key_mismatch"


INVALID_EVENTS = [
    {"type": "content"},
    {"type": "account", "account": {"id": "a"}, "content": {"id": "c"}},
    {"type": "thing", "content": {"id": "c"}},
    {**content(), "surprise": 1},
    {**content(), "signals": [{"source": "classifier", "confidence": 1.5}]},
    {**content(), "signals": [{"source": "hash_match", "confidence": 1}]},
    {**content(), "signals": [{"source": "classifier", "confidence": 1, "category": "no spaces!"}]},
    {**content(), "ip_events": [{"ip": "999.1.1.1", "type": "login", "at": "2026-01-01T00:00:00Z"}]},
    {**content(media_type="audio")},
]


def test_invalid_events_are_refused(svc):
    for body in INVALID_EVENTS:
        with pytest.raises(SafeholdError) as e:
            svc.events.ingest(PLATFORM, body, idempotency_key="k")
        assert e.value.code == "request.invalid" and e.value.status == 422, body
    assert count(svc, IngestedEvent) == 0


def test_no_detection_no_case_and_no_media(banked):
    svc = banked
    other = jpeg(300)
    out = svc.events.ingest(PLATFORM, content(), file=other, idempotency_key="k")
    assert out["scan"]["verdict"] == "no_match" and out["cases"] == []
    assert not svc.vault.exists(hashlib.sha256(other).hexdigest())
    assert count(svc, Case) == 0
    with pytest.raises(SafeholdError) as e:
        svc.events.ingest(PLATFORM, {"type": "account", "account": {"id": "a"}}, file=other, idempotency_key="k2")
    assert e.value.code == "event.file_needs_content"


def test_signals_keep_unmatched_media(banked):
    svc = banked
    other = jpeg(301)
    body = {
        **content(media_type="image"),
        "signals": [{"source": "classifier", "category": "csam", "confidence": 0.7, "label": "model-x"}],
    }
    out = svc.events.ingest(PLATFORM, body, file=other, filename="o.jpg", idempotency_key="k")
    case = svc.cases.get(out["cases"][0]["id"])
    assert case["source"] == "classifier" and case["queue"] == "media" and not case["known_match"]
    assert case["band"] == "P2" and case["items"][0]["has_media"]
    assert case["signals"][0]["detail"] == {"label": "model-x"}
    assert svc.vault.exists(hashlib.sha256(other).hexdigest())


def test_text_and_account_events(banked):
    svc = banked
    text = {**content("m1", media_type="text", text="synthetic message"), "account": {"id": "u9"}}
    text["signals"] = [{"source": "grooming", "category": "grooming", "confidence": 0.9}]
    text["occurred_at"] = "2026-03-04T05:06:07Z"
    case = svc.cases.get(svc.events.ingest(PLATFORM, text, idempotency_key="t")["cases"][0]["id"])
    assert case["queue"] == "text" and case["items"][0]["text"] == "synthetic message"
    assert case["signals"][0]["detail"]["occurred_at"] == "2026-03-04T05:06:07+00:00"
    # An account event with no signal and no open case opens nothing…
    login = {"type": "account", "account": {"id": "u9"}}
    login["ip_events"] = [{"ip": "2001:db8::1", "type": "login", "at": "2026-03-04T05:00:00Z"}]
    assert svc.events.ingest(PLATFORM, login, idempotency_key="l1")["cases"] == []
    # …but joins the account's open case once there is one.
    report = {"type": "account", "account": {"id": "u9"}, "signals": [{"source": "user_report", "confidence": 0.5}]}
    opened = svc.events.ingest(PLATFORM, report, idempotency_key="r1")["cases"][0]
    case = svc.cases.get(opened["id"])
    assert case["queue"] == "report" and case["items"] == [] and case["category"] is None
    joined = svc.events.ingest(PLATFORM, login, idempotency_key="l2")["cases"]
    assert joined == [{"id": opened["id"], "created": False, "status": "open", "band": opened["band"]}]
    assert svc.cases.get(opened["id"])["metadata"]["ip_events"][0]["ip"] == "2001:db8::1"


def test_bank_on_match_decides(banked):
    svc = banked
    copy = variant(KNOWN, scale=0.5, quality=60)
    svc.banks.update("known", on_match="none", actor="test")
    out = svc.events.ingest(PLATFORM, content(), file=copy, idempotency_key="a")
    assert out["scan"]["verdict"] == "match" and out["cases"] == []
    assert not svc.vault.exists(hashlib.sha256(copy).hexdigest())
    svc.banks.update("known", on_match="case", actor="test")
    svc.banks.create("fp", kind="allow", created_by="test")
    svc.banks.add_file("fp", KNOWN, filename="k.jpg")
    out = svc.events.ingest(PLATFORM, content(), file=copy, idempotency_key="b")
    assert out["scan"]["verdict"] == "allowlisted" and out["cases"] == []


def test_auto_bank_runs_policies_in_the_same_transaction(banked, monkeypatch):
    svc = banked
    svc.banks.update("known", on_match="auto", actor="test")
    calls = []

    def for_detection(session, case, signals, actor):
        calls.append((case.id, sorted(s.signal_type for s in signals), actor, session.is_active))
        return []

    monkeypatch.setattr(svc.actions, "for_detection", for_detection, raising=False)
    out = svc.events.ingest(PLATFORM, content(), file=KNOWN, idempotency_key="auto")
    assert calls == [(out["cases"][0]["id"], ["md5", "pdq"], "apikey:platform", True)]

    def broken(session, case, signals, actor):
        raise RuntimeError("policy engine down")

    # A failure anywhere leaves nothing half-done: no case, no idempotency record; the retry redoes it all.
    monkeypatch.setattr(svc.actions, "for_detection", broken, raising=False)
    with pytest.raises(RuntimeError):
        svc.events.ingest(PLATFORM, content("c2"), file=KNOWN, idempotency_key="retry")
    assert count(svc, Case) == 1 and count(svc, IngestedEvent) == 1
    monkeypatch.setattr(svc.actions, "for_detection", for_detection, raising=False)
    out = svc.events.ingest(PLATFORM, content("c2"), file=KNOWN, idempotency_key="retry")
    assert out["cases"][0]["created"] and not out["duplicate"] and count(svc, Case) == 2


def test_concurrent_retries_of_one_event_record_it_once(banked):
    svc = banked
    n = 6
    barrier = threading.Barrier(n)
    results, errors = [], []
    body = {**content(), "signals": [{"source": "user_report", "confidence": 0.5}]}

    def go():
        try:
            barrier.wait(timeout=10)
            results.append(svc.events.ingest(PLATFORM, body, idempotency_key="once"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sum(not r["duplicate"] for r in results) == 1
    assert len({r["cases"][0]["id"] for r in results}) == 1
    assert len(svc.cases.get(results[0]["cases"][0]["id"])["signals"]) == 1


def test_match_confidence():
    def m(signal_type, distance, detail=None):
        return Match("b", "block", signal_type, distance, "original", {}, detail)

    assert match_confidence(m("md5", 0), 31) == 1.0
    assert match_confidence(m("pdq", 0), 31) == 1.0
    assert match_confidence(m("pdq", 10), 20) == 0.75
    assert match_confidence(m("pdq", 31), 31) == 0.5
    assert match_confidence(m("pdq", 3), 0) == 0.5
    assert match_confidence(m("vpdq", 0, {"query_match_percent": 80.0}), 31) == 0.8
    assert match_confidence(m("vpdq", 0, {"query_match_percent": 20.0}), 31) == 0.5


def test_auto_bank_acts_through_the_auto_policies(banked):
    svc = banked
    svc.banks.update("known", on_match="auto", actor="test")
    svc.actions.create_policy("known-auto", "auto", {"bank": "known"}, ["block_content"], actor="test")
    out = svc.events.ingest(PLATFORM, content(), file=KNOWN, idempotency_key="auto")
    case = svc.cases.get(out["cases"][0]["id"])
    assert [(a["kind"], a["policy"]) for a in case["actions"]] == [("block_content", "known-auto")]
    # A match on a bank that only opens cases runs no automatic policy.
    svc.banks.update("known", on_match="case", actor="test")
    out = svc.events.ingest(PLATFORM, content("c2"), file=KNOWN, idempotency_key="case")
    assert svc.cases.get(out["cases"][0]["id"])["actions"] == []


def test_old_idempotency_records_are_pruned_hourly_and_cases_stay(banked):
    svc = banked
    event = {
        **content("p1", media_type="text", text="synthetic"),
        "signals": [{"source": "classifier", "confidence": 0.7}],
    }
    first = svc.events.ingest(PLATFORM, event, idempotency_key="old")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert svc.pipeline.prune(dt.timedelta(days=30), now=later) == 1
    assert svc.pipeline.prune(dt.timedelta(days=30), now=later + dt.timedelta(minutes=5)) == 0  # once an hour
    assert count(svc, IngestedEvent) == 0 and count(svc, Case) == 1
    # The key is free again: the same event now adds to the subject's open case instead of answering "duplicate".
    again = svc.events.ingest(PLATFORM, event, idempotency_key="old")
    assert again["duplicate"] is False and again["cases"][0]["id"] == first["cases"][0]["id"]


def test_a_platform_signal_about_a_minor_at_risk_is_p0(svc):
    """The urgency rule is general: any door, any category, a minor at risk at level high."""
    signal = {
        "source": "user_report",
        "category": "grooming",
        "confidence": 0.6,
        "level": "high",
        "minor_at_risk": True,
    }
    out = svc.events.ingest(PLATFORM, {**content("dm-1"), "signals": [signal]}, idempotency_key="m1")
    case = svc.cases.get(out["cases"][0]["id"])
    assert out["cases"][0]["band"] == "P0" and case["signals"][0]["detail"]["minor_at_risk"] is True
    assert case["reasons"][0].startswith("P0 (rule minor_at_risk)")
    low = {**signal, "level": "medium"}
    assert (
        svc.events.ingest(PLATFORM, {**content("dm-2"), "signals": [low]}, idempotency_key="m2")["cases"][0]["band"]
        != "P0"
    )


def test_a_bank_that_gains_a_scanned_hash_makes_the_rescan_new(banked):
    """The scan door's key is derived from what was found, not only from what was scanned: once an ``auto`` bank
    holds the hash, the same content scanned again gets its signal and automatic actions instead of the old answer."""
    svc = banked
    first = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(KNOWN), KNOWN, content_id="c1")
    retry = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(KNOWN), KNOWN, content_id="c1")
    assert retry["duplicate"] and retry["cases"] == first["cases"]
    svc.banks.create("auto", created_by="test")
    svc.banks.update("auto", on_match="auto", actor="test")
    svc.banks.add_file("auto", KNOWN, filename="known.jpg", category="A1")
    svc.actions.create_policy("auto-block", "auto", {"bank": "auto"}, ["block_content"], actor="test")
    again = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(KNOWN), KNOWN, content_id="c1")
    assert not again["duplicate"] and again["cases"][0]["id"] == first["cases"][0]["id"]
    case = svc.cases.get(first["cases"][0]["id"])
    assert {s["bank"] for s in case["signals"]} == {"known", "auto"}
    assert [(a["kind"], a["policy"]) for a in case["actions"]] == [("block_content", "auto-block")]


def test_bank_policy_is_read_from_the_index_not_the_table(banked):
    """Was: every scan's matches cost a query of the banks table; ``on_match`` now comes with the index's bank
    settings, kept current by its change log like the thresholds."""
    from sqlalchemy import event

    svc = banked
    scan = svc.scans.scan_bytes(KNOWN)

    def ruled() -> tuple[list, list[str]]:
        statements: list[str] = []

        def seen(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(svc.db.engine, "before_cursor_execute", seen)
        try:
            return svc.pipeline.bank_signals(scan), statements
        finally:
            event.remove(svc.db.engine, "before_cursor_execute", seen)

    found, sql = ruled()
    assert found and {b.auto for b in found} == {False} and sql == []
    svc.banks.update("known", on_match="auto", actor="test")
    found, sql = ruled()
    assert found and {b.auto for b in found} == {True} and sql == []
    svc.banks.update("known", on_match="none", actor="test")
    assert ruled() == ([], [])
