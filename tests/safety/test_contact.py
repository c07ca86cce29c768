"""The contact policy's decisions, pure: the default policy per band pair and kind, the relaxation for connected
pairs, the risk and account-age rules, unknown bands, and invalid policies refused with clear errors."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from safehold.agebands import BANDS, MINOR_BANDS
from safehold.errors import SafeholdError
from safehold.safety.contact import (
    DEFAULT_POLICY,
    KINDS,
    NO_RISK,
    CompiledPolicy,
    Relationship,
    Risk,
    account_age_days,
    conditions_text,
    default_policy,
)
from safehold.safety.contact_service import parse_policy

POLICY = CompiledPolicy(default_policy())
CONTACT = ("message", "friend_request", "call", "media")
STRANGER_SENDERS = ("adult", "unknown")


def expected(sender: str, recipient: str, kind: str) -> tuple[str, str | None]:
    """The default policy for strangers with no risk and an account of unknown age, written out from its sources:
    (outcome, rule)."""
    if sender in STRANGER_SENDERS and recipient in MINOR_BANDS:
        if kind == "discover":
            return "block", "minor.not_discoverable"
        if recipient in ("under13", "13-15") and kind in CONTACT:
            return "block", "under16.stranger_contact"
        if recipient == "under13" and kind == "follow":
            return "block", "under13.stranger_follow"
        if kind == "follow":
            return "friction", "minor.stranger_follow"
        return "friction", "teen.stranger_contact"
    if sender in STRANGER_SENDERS and recipient == "unknown" and kind in ("message", "call", "media"):
        return "friction", "unknown_age.stranger_contact"
    return "allow", None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("recipient", BANDS)
@pytest.mark.parametrize("sender", BANDS)
def test_the_default_policy_for_strangers(sender, recipient, kind):
    d = POLICY.decide(sender, recipient, kind)
    assert (d.decision, d.rule) == expected(sender, recipient, kind)
    assert d.prompt == {"block": "contact.blocked", "allow": None}.get(d.decision, d.prompt)
    if d.decision == "friction":
        want = "contact.friction.unknown_age" if recipient == "unknown" else "contact.friction.stranger"
        assert d.prompt == want


def test_minors_reach_minors_and_adults_reach_adults():
    for a in (*MINOR_BANDS, "adult"):
        for b in (*MINOR_BANDS, "adult"):
            if a == "adult" and b != "adult":
                continue
            for kind in KINDS:
                assert POLICY.decide(a, b, kind).decision == "allow", (a, b, kind)


@pytest.mark.parametrize(
    "rel",
    [
        Relationship(prior_conversation=True),
        Relationship(recipient_follows_sender=True),
        Relationship(mutual_contacts=3),
    ],
)
def test_a_connected_pair_is_relaxed_one_step(rel):
    d = POLICY.decide("adult", "13-15", "message", rel)
    assert (d.decision, d.prompt, d.relaxed) == ("friction", "contact.friction.stranger", True)
    assert POLICY.decide("adult", "16-17", "message", rel).decision == "allow"
    assert POLICY.decide("adult", "under13", "follow", rel).decision == "friction"
    assert POLICY.decide("adult", "13-15", "discover", rel).decision == "allow"  # connected: no longer a stranger


def test_two_mutual_contacts_do_not_connect():
    assert POLICY.decide("adult", "13-15", "message", Relationship(mutual_contacts=2)).decision == "block"


def test_an_open_grooming_case_blocks_toward_minors_and_unknown_ages_even_when_connected():
    close = Relationship(mutual_contacts=50, prior_conversation=True, recipient_follows_sender=True)
    for recipient in (*MINOR_BANDS, "unknown"):
        for kind in KINDS:
            d = POLICY.decide("adult", recipient, kind, close, 900, Risk(grooming=1))
            assert (d.decision, d.rule, d.relaxed) == ("block", "risk.grooming", False)
    assert POLICY.decide("13-15", "13-15", "message", close, None, Risk(grooming=1)).decision == "block"
    assert POLICY.decide("adult", "adult", "message", close, None, Risk(grooming=1)).decision == "allow"


def test_three_open_reports_block_toward_minors():
    assert POLICY.decide("adult", "16-17", "message", Relationship(), None, Risk(reports=2)).decision == "friction"
    d = POLICY.decide("adult", "16-17", "message", Relationship(prior_conversation=True), None, Risk(reports=3))
    assert (d.decision, d.rule) == ("block", "risk.reports")
    assert POLICY.decide("adult", "unknown", "follow", Relationship(), None, Risk(reports=9)).decision == "allow"


def test_a_new_adult_account_cannot_reach_a_teen_stranger():
    assert POLICY.decide("adult", "16-17", "message", Relationship(), 2.5).rule == "teen.new_account"
    assert POLICY.decide("adult", "16-17", "message", Relationship(), 7.0).decision == "friction"
    assert POLICY.decide("adult", "16-17", "message", Relationship(), None).decision == "friction"  # age unknown


def test_account_age_days():
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    assert account_age_days(None, now) is None
    assert account_age_days(dt.datetime(2026, 12, 1), now) == 2.0  # naive: UTC
    assert account_age_days(now + dt.timedelta(days=1), now) == 0.0  # a clock ahead is not a negative age


def test_the_fallback_and_an_operator_rule_order():
    doc = {
        "rules": [
            {"name": "calls.off", "kinds": ["call"], "outcome": "block", "reason": "no calls at all"},
            {"name": "friendly", "outcome": "friction", "prompt": "contact.friction.sender", "reason": "be kind"},
        ],
        "fallback": {"outcome": "block", "reason": "unreachable"},
    }
    p = CompiledPolicy(parse_policy(doc))
    assert p.decide("13-15", "13-15", "call").rule == "calls.off"
    assert p.decide("adult", "adult", "message").rule == "friendly"
    assert CompiledPolicy(parse_policy({"rules": []})).decide("adult", "under13", "message").decision == "allow"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: p["rules"][0].update(outcome="maybe"), "rules.0.outcome"),
        (lambda p: p["rules"][0].update(recipient=["toddler"]), "rules.0.recipient.0"),
        (lambda p: p["rules"][0].update(kinds=["poke"]), "rules.0.kinds.0"),
        (lambda p: p["rules"][0].update(colour="red"), "rules.0.colour"),
        (lambda p: p["rules"][1].update(name=p["rules"][0]["name"]), "names must be unique"),
        (lambda p: p["rules"][7].pop("prompt"), "a friction needs a prompt"),
        (lambda p: p["rules"][4].pop("relaxed_prompt"), "needs a relaxed_prompt"),
        (lambda p: p["rules"][0].update(prompt="contact.hello"), "rules.0.prompt"),
        (lambda p: p["rules"][0].update(min_open_grooming_cases=-1), "rules.0.min_open_grooming_cases"),
        (lambda p: p["rules"][0].update(sender=[]), "sender is empty"),
        (lambda p: p.pop("rules"), "rules"),
    ],
)
def test_invalid_policies_are_refused_with_where_and_why(change, says):
    doc = copy.deepcopy(DEFAULT_POLICY)
    change(doc)
    with pytest.raises(SafeholdError) as exc:
        parse_policy(doc)
    assert exc.value.code == "contact.invalid_policy" and exc.value.status == 422
    assert says in exc.value.message or any(says in e["loc"] or says in e["msg"] for e in exc.value.detail["errors"])


def test_a_policy_is_an_object():
    with pytest.raises(SafeholdError, match="JSON object"):
        parse_policy([1, 2])


def test_conditions_in_words():
    rule = next(r for r in DEFAULT_POLICY["rules"] if r["name"] == "teen.new_account")
    assert conditions_text(rule) == "sender's account < 7 days old"
    assert conditions_text({"name": "x"}) == "-"


def test_a_sender_with_an_age_conflict_is_blocked_from_unconnected_minors():
    for recipient in MINOR_BANDS:
        for kind in (*CONTACT, "follow", "discover"):
            d = POLICY.decide("adult", recipient, kind, sender_age_conflict=True)
            assert (d.decision, d.rule) == ("block", "age_conflict.minor_contact")
    connected = POLICY.decide("adult", "13-15", "message", Relationship(prior_conversation=True), None, NO_RISK, True)
    assert (connected.decision, connected.rule) == ("friction", "under16.stranger_contact")  # as an adult stranger
    assert POLICY.decide("adult", "adult", "message", sender_age_conflict=True).decision == "allow"


def test_an_unknown_age_recipient_gets_the_neutral_prompt():
    d = POLICY.decide("adult", "unknown", "message")
    assert (d.decision, d.prompt) == ("friction", "contact.friction.unknown_age")


def test_problems_between_fields_are_reported_once_the_fields_are_valid():
    """As documented: every structural problem at once, a rule's own cross-field problem with them when that rule's
    fields are valid, and the policy's (two rules of one name) only once every field is."""
    doc = copy.deepcopy(DEFAULT_POLICY)
    doc["rules"][0].pop("reason")  # structural
    doc["rules"][7].pop("prompt")  # a friction without a prompt: rule 7's fields are all valid
    doc["rules"][1]["name"] = doc["rules"][2]["name"]  # two rules of one name: a policy-level problem
    with pytest.raises(SafeholdError) as exc:
        parse_policy(doc)
    said = [e["loc"] + ": " + e["msg"] for e in exc.value.detail["errors"]]
    assert len(said) == 2 and "rules.0.reason" in said[0] and "a friction needs a prompt" in said[1]
    doc["rules"][0]["reason"] = "fixed"
    doc["rules"][7]["prompt"] = "contact.friction.stranger"
    with pytest.raises(SafeholdError, match="two rules are named"):
        parse_policy(doc)
