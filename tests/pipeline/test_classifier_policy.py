"""Classifier policy: a hit on a label legal for adults needs an age signal to open a case; a child-abuse label's
hit opens one alone; automatic actions run only when the operator said so; thresholds are the policy's."""

from __future__ import annotations

import pytest

from safehold.auth.apikeys import Principal
from safehold.cases.detection import Detection
from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.pipeline.classifier_policy import ClassifierPolicies
from safehold.pipeline.service import Submission
from safehold.store.models import Case, Conversation
from tests.classifiers.plugins import BRIGHT, DARK, install, picture

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")


@pytest.fixture
def settings(tmp_path, database_url, monkeypatch):
    install(monkeypatch)
    return Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_explicit", "test_dark"])


def event(svc, content_id: str, data: bytes = BRIGHT, account: str | None = None, **extra) -> dict:
    body = {"type": "content", "content": {"id": content_id}, **extra}
    if account:
        body["account"] = {"id": account}
    return svc.events.ingest(PLATFORM, body, file=data, filename="p.jpg", idempotency_key=f"k-{content_id}")


def submit(svc, content_id: str, data: bytes = BRIGHT, **kw):
    sub = Submission(
        Detection(source="event", content_id=content_id, account_id=kw.pop("account_id", None)),
        scans=[svc.scans.scan_bytes(data)],
        media=data,
        **kw,
    )
    return svc.pipeline.submit(sub, key=f"t:{content_id}", digest="d", actor="test", answer=lambda ref: ref.to_dict())


def signal_of(svc, ref: dict) -> dict:
    [sig] = svc.cases.get(ref["id"])["signals"]
    return sig


def test_the_defaults_follow_the_labels(svc):
    by_name = {c["name"]: c["policy"] for c in svc.classifier_policies.list()}
    assert by_name["test_explicit"] == {
        "classifier": "test_explicit", "threshold": 0.9, "needs_age_signal": True, "alone": "ignore",
        "auto_action": False, "category": "csam",
    }  # fmt: skip
    assert by_name["test_dark"]["needs_age_signal"] is False and by_name["test_dark"]["alone"] == "case"


def test_an_explicit_hit_alone_opens_no_case(svc):
    assert event(svc, "c1")["cases"] == []
    assert submit(svc, "c2") is None
    with svc.db.session() as s:
        assert s.query(Case).count() == 0


@pytest.mark.parametrize(
    ("reason", "p0", "category"),
    [
        ("depicted_minor", False, "csam"),
        ("recipient_minor", True, "grooming"),  # an adult's image sent to a child: exposure, no minor shown
        ("grooming_conversation", True, "csam"),  # conservative: the image may be the child's
        ("uploader_minor", True, "csam"),  # possibly self-generated imagery of a minor
    ],
)
def test_an_explicit_hit_with_an_age_signal_opens_a_minor_case(svc, reason, p0, category):
    kw: dict = {}
    if reason == "uploader_minor":
        svc.ages.record("test", "acct-young", "platform", band="13-15")
        kw["account_id"] = "acct-young"
    else:
        kw["age_reasons"] = [reason]
    ref = submit(svc, f"c-{reason}", **kw)
    sig = signal_of(svc, ref)
    assert sig["category"] == category and sig["detail"]["label"] == "explicit" and sig["confidence"] > 0.9
    assert sig["detail"]["age"]["reasons"] == [reason]
    assert sig["detail"]["age"]["uploader_band"] == ("13-15" if reason == "uploader_minor" else "unknown")
    case = svc.cases.get(ref["id"])
    assert case["category"] == category and case["source"] == "classifier"
    assert (case["band"] == "P0") is p0 and case["band"] in ("P0", "P1", "P2")
    if p0:
        assert any("minor_at_risk" in line for line in case["reasons"])


def test_the_doors_take_depicted_minor_and_a_flagged_grooming_conversation(svc):
    [ref] = event(svc, "c3", depicted_minor=True)["cases"]
    assert svc.cases.get(ref["id"])["signals"][0]["detail"]["age"]["reasons"] == ["depicted_minor"]
    with pytest.raises(SafeholdError) as e:
        event(svc, "c4", grooming_conversation="conv-1")
    assert (e.value.code, e.value.status) == ("classifier.grooming_not_flagged", 422)
    with svc.db.session() as s:
        s.add(Conversation(external_id="conv-1", alert=True))
    [ref] = event(svc, "c5", grooming_conversation="conv-1")["cases"]
    sig = svc.cases.get(ref["id"])["signals"][0]
    assert sig["detail"]["age"] == {"reasons": ["grooming_conversation"], "uploader_band": "unknown",
                                    "grooming_conversation": "conv-1"}  # fmt: skip
    out = svc.events.scanned(PLATFORM, svc.scans.scan_bytes(picture(240)), picture(240), content_id="c6",
                             depicted_minor=True)  # fmt: skip
    assert out["cases"][0]["created"]


def test_a_closed_grooming_case_no_longer_flags_its_conversation(svc):
    with svc.db.session() as s:
        case = Case(subject_key="account:a", source="grooming", queue="text", status="closed", severity=0.7,
                    confidence=0.9, priority=0.5, band="P3", known_match=False)  # fmt: skip
        s.add(case)
        s.flush()
        s.add(Conversation(external_id="conv-2", alert=False, case_id=case.id))
    with pytest.raises(SafeholdError):
        event(svc, "c7", grooming_conversation="conv-2")


def test_a_child_abuse_label_opens_a_case_alone(svc):
    [ref] = event(svc, "c8", data=DARK)["cases"]
    case = svc.cases.get(ref["id"])
    [sig] = case["signals"]
    assert sig["category"] == "csam" and sig["signal_type"] == "test_dark" and "age" not in sig["detail"]


def test_alone_case_opens_a_case_in_the_label(svc):
    svc.classifier_policies.change("test_explicit", "test", {"alone": "case"})
    [ref] = event(svc, "c9")["cases"]
    assert svc.cases.get(ref["id"])["signals"][0]["category"] == "explicit"


def test_a_hit_only_noted_shows_on_what_the_submission_records(svc):
    body = {"signals": [{"source": "user_report", "category": "other", "confidence": 0.5}]}
    [ref] = event(svc, "c10", **body)["cases"]
    case = svc.cases.get(ref["id"])
    assert [s["source"] for s in case["signals"]] == ["user_report"]
    [noted] = case["items"][0]["metadata"]["classifier_scores"]
    assert noted["classifier"] == "test_explicit" and noted["label"] == "explicit" and noted["threshold"] == 0.9


def test_no_automatic_action_unless_the_policy_says_so(svc):
    svc.actions.create_policy("eager", "auto", {"source": "classifier"}, ["block_content"], actor="test")
    [ref] = event(svc, "c11", data=DARK)["cases"]
    assert svc.cases.get(ref["id"])["actions"] == []
    svc.classifier_policies.change("test_dark", "admin", {"auto_action": True})
    [ref] = event(svc, "c12", data=DARK)["cases"]
    case = svc.cases.get(ref["id"])
    assert [a["kind"] for a in case["actions"]] == ["block_content"] and case["signals"][0]["detail"]["auto_action"]
    [rec] = svc.audit.list(limit=10, action="classifier.policy")
    assert rec["actor"] == "admin" and rec["detail"]["changed"] == {"auto_action": True}
    assert rec["detail"]["before"]["auto_action"] is False and rec["detail"]["after"]["auto_action"] is True


def test_the_threshold_override_applies(svc):
    svc.classifier_policies.change("test_explicit", "test", {"threshold": 0.97})
    assert submit(svc, "c13", age_reasons=["depicted_minor"]) is None  # 0.95 < 0.97
    ref = submit(svc, "c14", data=picture(245), age_reasons=["depicted_minor"])  # 0.978
    assert signal_of(svc, ref)["detail"]["threshold"] == 0.97
    svc.classifier_policies.change("test_explicit", "test", {"threshold": None})
    assert svc.classifier_policies.policy("test_explicit").threshold == 0.9


def test_a_change_reaches_every_process_within_the_cache_time(svc):
    other = ClassifierPolicies(svc.db, svc.audit, svc.classifiers, ttl=3600)  # another process, reading first
    assert other.policy("test_explicit").threshold == 0.9
    svc.classifier_policies.change("test_explicit", "test", {"threshold": 0.95})
    assert svc.classifier_policies.policy("test_explicit").threshold == 0.95  # its own process: at once
    assert other.policy("test_explicit").threshold == 0.9  # cached …
    other.ttl = 0
    assert other.policy("test_explicit").threshold == 0.95  # … until it is read again


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"alone": "maybe"}, "alone"),
        ({"needs_age_signal": "yes"}, "needs_age_signal"),
        ({"category": "Not A Slug!"}, "category"),
        ({"colour": "red"}, "colour"),
        ({}, "body"),
    ],
)
def test_policy_changes_are_validated(svc, changes, field):
    with pytest.raises(SafeholdError) as e:
        svc.classifier_policies.change("test_explicit", "test", changes)
    assert (e.value.code, e.value.status, e.value.detail["field"]) == ("classifier.invalid_policy", 422, field)


def test_an_unknown_classifier_has_no_policy(svc):
    with pytest.raises(SafeholdError) as e:
        svc.classifier_policies.change("nudity", "test", {"threshold": 0.5})
    assert (e.value.code, e.value.status) == ("classifier.not_found", 404)


def test_a_door_may_only_pass_known_age_reasons():
    with pytest.raises(ValueError, match="unknown age reasons"):
        Submission(Detection(source="event", content_id="c"), age_reasons=["looks_young"])


def test_recipient_minor_with_another_reason_keeps_csam(svc):
    """Only ``recipient_minor`` alone is exposure (``grooming``): with a sign that a minor is shown, apparent CSAM."""
    ref = submit(svc, "c-both", age_reasons=["recipient_minor", "depicted_minor"])
    assert signal_of(svc, ref)["category"] == "csam"
