"""The contact service: bands and risk from the store, cached; the saved policy, versioned and audited, and
hot-reloaded in another process's services on the same database."""

from __future__ import annotations

import copy
import datetime as dt
import time

import pytest
from sqlalchemy import update

from safehold.cases.detection import Detection, DetectionSignal
from safehold.errors import SafeholdError
from safehold.safety.contact import DEFAULT_POLICY
from safehold.services import Services
from safehold.store.models import Case


def case(source: str, account: str, content: str | None = None, category: str = "grooming"):
    return Detection(source, content, account, signals=[DetectionSignal(source, category=category)])


BLOCK_CALLS = {"rules": [{"name": "calls.off", "kinds": ["call"], "outcome": "block", "reason": "no calls"}]}


def test_a_check_reads_bands_and_answers_the_default(svc):
    svc.ages.record("t", "kid", "platform", band="13-15")
    svc.ages.record("t", "grown", "declared", age=30)
    r = svc.contact.check("grown", "kid", "message")
    assert r.pop("prompt_text")["key"] == "contact.blocked"  # the prompts catalogue's text, in the default locale
    assert r == {
        "decision": "block",
        "reason": "under-16s cannot be contacted by adults they are not connected to",
        "rule": "under16.stranger_contact",
        "prompt": "contact.blocked",
        "relaxed": False,
        "sender_band": "adult",
        "recipient_band": "13-15",
        "sender_age_conflict": False,
        "policy_version": 0,
    }
    assert svc.contact.check("grown", "kid", "message", prior_conversation=True)["decision"] == "friction"
    assert svc.contact.check("kid", "grown", "message")["decision"] == "allow"
    new = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    svc.ages.record("t", "teen", "platform", band="16-17")
    assert svc.contact.check("grown", "teen", "call", sender_created_at=new)["rule"] == "teen.new_account"


def test_bad_input_is_refused(svc):
    for args, says in [
        (("", "b", "message"), "sender"),
        (("a", "b" * 129, "message"), "recipient"),
        (("a", "b", "poke"), "kind"),
        (("a\x00", "b", "message"), "sender must be printable"),  # the age book's rule, at this door too
        (("a", "   ", "message"), "recipient"),
    ]:
        with pytest.raises(SafeholdError, match=says) as exc:
            svc.contact.check(*args)
        assert exc.value.code == "contact.invalid"


def test_open_grooming_and_report_cases_are_risk_until_closed(svc):
    svc.ages.record("t", "kid", "platform", band="16-17")
    svc.contact.cache_ttl = 0  # re-read the open cases at every check (the setting is seconds; 0 for the test)
    friends = {"prior_conversation": True}
    assert svc.contact.check("groomer", "kid", "message", **friends)["decision"] == "allow"
    ref = svc.cases.record(case("grooming", "groomer"), "t")
    assert svc.contact.check("groomer", "kid", "message", **friends)["rule"] == "risk.grooming"
    for i in range(3):
        svc.cases.record(case("user_report", "reported", f"c{i}", "other"), "t")
    assert svc.contact.check("reported", "kid", "message", **friends)["rule"] == "risk.reports"
    with svc.db.session() as s:
        s.execute(update(Case).where(Case.id == ref.id).values(status="closed", open_key=None))
    assert svc.contact.check("groomer", "kid", "message", **friends)["decision"] == "allow"


def test_risk_is_cached_for_the_ttl(svc):
    svc.ages.record("t", "kid", "platform", band="16-17")
    assert svc.contact.check("g", "kid", "follow")["decision"] == "friction"
    svc.cases.record(case("grooming", "g"), "t")
    assert svc.contact.check("g", "kid", "follow")["decision"] == "friction"  # within the TTL: not re-read
    svc.contact._risk_loaded -= svc.contact.cache_ttl + 1
    assert svc.contact.check("g", "kid", "follow")["decision"] == "block"


def test_a_band_recorded_here_is_used_by_the_next_check(svc):
    assert svc.contact.check("grown", "child", "message")["recipient_band"] == "unknown"  # read, and cached
    svc.ages.record("t", "grown", "declared", age=30)
    svc.ages.record("t", "child", "platform", band="under13")
    r = svc.contact.check("grown", "child", "message")
    assert (r["sender_band"], r["recipient_band"], r["decision"]) == ("adult", "under13", "block")


def test_save_show_history_reset_and_audit(svc):
    saved = svc.contact.save(BLOCK_CALLS, "ada")
    assert saved["version"] >= 1 and saved["author"] == "ada" and not saved["builtin"]
    assert saved["policy"]["rules"][0]["prompt"] == "contact.blocked"  # a block's prompt filled in
    assert svc.contact.check("x", "y", "call")["decision"] == "block"  # this process: at once
    with pytest.raises(SafeholdError) as exc:
        svc.contact.save({"rules": [{"name": "x"}]}, "ada")
    assert exc.value.code == "contact.invalid_policy" and len(exc.value.detail["errors"]) >= 2
    assert svc.contact.show()["version"] == saved["version"]  # nothing saved
    reset = svc.contact.reset("ada")
    assert reset["version"] > saved["version"] and reset["policy"]["rules"][0]["name"] == "risk.grooming"
    history = svc.contact.history()
    assert [h["active"] for h in history] == [True, False]
    actions = [r["action"] for r in svc.audit.list(action="contact.")]
    assert sorted(actions) == ["contact.policy_reset", "contact.policy_set"]


def test_a_saved_policy_reaches_another_process_within_the_ttl(settings):
    a = Services(settings.model_copy(update={"contact_policy_ttl": 0.2}), load_index=False)
    b = Services(settings.model_copy(update={"contact_policy_ttl": 0.2}), load_index=False)
    try:
        assert b.contact.check("x", "y", "call")["policy_version"] == 0
        doc = copy.deepcopy(DEFAULT_POLICY)
        doc["rules"].insert(0, BLOCK_CALLS["rules"][0])
        version = a.contact.save(doc, "ada")["version"]
        deadline = time.monotonic() + 5
        while b.contact.check("x", "y", "call")["policy_version"] != version:
            assert time.monotonic() < deadline, "the other process never saw the new policy"
            time.sleep(0.05)
        assert b.contact.check("x", "y", "call")["rule"] == "calls.off"
    finally:
        a.close()
        b.close()


def test_prompt_texts_come_from_the_injected_catalogue(svc):
    svc.contact.prompt_for = lambda key, locale: {"title": f"{key}/{locale}"} if key != "contact.blocked" else None
    svc.ages.record("t", "teen", "platform", band="16-17")
    r = svc.contact.check("stranger", "teen", "message", locale="de")
    assert r["prompt"] == "contact.friction.stranger" and r["prompt_text"] == {"title": "contact.friction.stranger/de"}
    svc.ages.record("t", "kid", "platform", band="under13")
    assert "prompt_text" not in svc.contact.check("stranger", "kid", "message")


def test_an_adult_claiming_to_be_a_child_is_judged_as_an_adult_sender(svc):
    svc.ages.record("t", "kid3", "platform", band="under13")
    svc.ages.record("t", "friend", "platform", band="13-15")
    svc.ages.record("t", "groomer", "platform", band="adult")
    svc.ages.record("t", "groomer", "chat", age=14, confidence=0.6, method="stated")  # "hey, i'm 14 too"
    assert svc.ages.band("groomer") == "13-15"  # protective, as a recipient
    r = svc.contact.check("groomer", "kid3", "message")
    assert (r["decision"], r["rule"], r["sender_band"], r["sender_age_conflict"]) == (
        "block", "age_conflict.minor_contact", "adult", True,
    )  # fmt: skip
    assert svc.contact.check("kid3", "groomer", "message")["recipient_band"] == "13-15"
    # A declared age of 14 on an account whose declared birth date says 1980: the same.
    svc.ages.record("t", "liar", "declared", birth_date=dt.date(1980, 1, 1))
    svc.ages.record("t", "liar", "declared", age=14)
    assert svc.contact.check("liar", "friend", "message")["rule"] == "age_conflict.minor_contact"
    # A reviewer's finding settles it: a real 14-year-old then reaches their peers.
    svc.ages.record("t", "liar", "reviewer", band="13-15")
    r = svc.contact.check("liar", "friend", "message")
    assert (r["decision"], r["sender_band"], r["sender_age_conflict"]) == ("allow", "13-15", False)


def test_in_memory_only_when_policy_risk_and_both_bands_are_fresh(svc):
    svc.ages.record("t", "a", "platform", band="adult")
    svc.ages.record("t", "b", "platform", band="13-15")
    assert not svc.contact.in_memory("a", "b")  # nothing loaded yet
    svc.contact.check("a", "b", "message")
    assert svc.contact.in_memory("a", "b")
    assert not svc.contact.in_memory("a", "never-seen")  # a band not cached
    svc.contact._risk_loaded -= svc.contact.cache_ttl + 1
    assert not svc.contact.in_memory("a", "b")  # the risk is due for a reload
