"""Policies and actions: decisions and automatic matches become recorded actions and queued deliveries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from safehold.errors import SafeholdError
from safehold.store.models import Case, CaseAction, WebhookDelivery
from tests.actions.conftest import make_case


def _decide(svc, case_id, decision, classification=None, actor="user:rev"):
    with svc.db.session() as s:
        case = s.get(Case, case_id)
        case.decision, case.classification = decision, classification
        return svc.actions.for_decision(s, case, actor)


def test_seeded_policies(svc):
    policies = {p["name"]: p for p in svc.actions.list_policies()}
    assert set(policies) == {"confirmed-csam", "confirmed-exploitation"}
    assert policies["confirmed-csam"]["match"] == {"decision": "csam"}
    assert "suspend_account" in policies["confirmed-csam"]["actions"]


def test_a_csam_decision_runs_its_policy_once_with_internal_kinds_only_to_explicit_subscribers(svc):
    svc.webhooks.create("platform", "http://127.0.0.1:9/p")
    svc.webhooks.create("evidence", "http://127.0.0.1:9/e", events=["preserve_evidence", "open_report_draft"])
    case_id = make_case(svc, category="A1", content_id="post-1", account_id="user-1")
    actions = _decide(svc, case_id, "csam", "A1")
    kinds = ["remove_content", "suspend_account", "preserve_evidence", "open_report_draft"]
    assert [a["kind"] for a in actions] == kinds
    assert {a["policy"] for a in actions} == {"confirmed-csam"}
    by_kind = {a["kind"]: a for a in actions}
    assert [d["webhook"] for d in by_kind["remove_content"]["deliveries"]] == ["platform"]
    assert [d["webhook"] for d in by_kind["preserve_evidence"]["deliveries"]] == ["evidence"]
    assert by_kind["preserve_evidence"]["internal"] and not by_kind["remove_content"]["internal"]

    assert _decide(svc, case_id, "csam", "A1") == []  # never twice
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(CaseAction)) == 4
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 4

    (remove,) = svc.webhooks.deliveries(webhook="platform", case_id=case_id, limit=1)
    payload = remove["payload"]
    assert payload["event"] == "action.remove_content" and payload["id"] == remove["idempotency_key"]
    assert payload["case"] == {
        "id": case_id,
        "content_id": "post-1",
        "account_id": "user-1",
        "decision": "csam",
        "classification": "A1",
        "category": "A1",
    }
    remove_id = by_kind["remove_content"]["id"]
    assert payload["action"] == {"id": remove_id, "kind": "remove_content", "params": {}, "policy": "confirmed-csam"}

    records = [r for r in svc.audit.list(limit=100) if r["action"] == "action.create"]
    assert len(records) == 4 and {r["target"] for r in records} == {f"case:{case_id}"}
    assert records[0]["actor"] == "user:rev" and records[0]["detail"]["deliveries"] == 1


def test_actions_roll_back_with_the_decision(svc):
    svc.webhooks.create("platform", "http://127.0.0.1:9/p")
    case_id = make_case(svc)
    with pytest.raises(RuntimeError), svc.db.session() as s:
        case = s.get(Case, case_id)
        case.decision = "cse"
        assert len(svc.actions.for_decision(s, case, "user:rev")) == 4
        raise RuntimeError("the decision fails to commit")
    assert svc.actions.list_for_case(case_id) == [] and svc.webhooks.deliveries() == []
    assert not [r for r in svc.audit.list() if r["action"] == "action.create"]


def test_classification_filter_and_not_violating_and_disabled_policies(svc):
    svc.actions.create_policy(
        "a1-only", "decision", {"decision": "csam", "classification": ["A1"]}, [{"kind": "notify", "params": {"x": 1}}]
    )
    svc.actions.create_policy("restore", "decision", {"decision": "not_violating"}, ["notify"], enabled=False)
    b2 = make_case(svc)
    assert "notify" not in [a["kind"] for a in _decide(svc, b2, "csam", "B2")]
    a1 = make_case(svc)
    notify = [a for a in _decide(svc, a1, "csam", "A1") if a["kind"] == "notify"]
    assert notify[0]["params"] == {"x": 1} and notify[0]["policy"] == "a1-only"
    assert _decide(svc, make_case(svc), "not_violating") == []
    svc.actions.update_policy("restore", enabled=True)
    assert [a["kind"] for a in _decide(svc, make_case(svc), "not_violating")] == ["notify"]
    assert _decide(svc, make_case(svc), None) == []


def test_auto_policies_fire_on_matching_signals(svc):
    svc.actions.create_policy(
        "ncmec-auto", "auto", {"bank": "ncmec", "category": ["A1", "A2"], "min_confidence": 0.9}, ["block_content"]
    )
    case_id = make_case(svc)

    def detect(*signals):
        with svc.db.session() as s:
            return svc.actions.for_detection(s, s.get(Case, case_id), list(signals), "apikey:platform")

    weak = SimpleNamespace(source="hash_match", bank="ncmec", category="A1", confidence=0.5)
    other_bank = {"source": "hash_match", "bank": "own", "category": "A1", "confidence": 1.0}
    assert detect(weak, other_bank) == []
    strong = {"source": "hash_match", "bank": "ncmec", "category": "A2", "confidence": 1.0}
    (action,) = detect(weak, strong)
    assert action["kind"] == "block_content" and action["actor"] == "apikey:platform"
    assert detect(strong) == []  # once per case


def test_manual_action_once_per_kind(svc):
    svc.webhooks.create("platform", "http://127.0.0.1:9/p")
    case_id = make_case(svc)
    a = svc.actions.take(case_id, "restrict_account", "user:senior", params={"days": 7})
    assert a["policy"] is None and a["params"] == {"days": 7} and len(a["deliveries"]) == 1
    with pytest.raises(SafeholdError) as e:
        svc.actions.take(case_id, "restrict_account", "user:senior")
    assert e.value.code == "action.exists" and e.value.detail == {"action_id": a["id"]}
    for args, code in [((case_id, "nuke"), "action.invalid_kind"), ((99999, "notify"), "case.not_found")]:
        with pytest.raises(SafeholdError) as e:
            svc.actions.take(*args, "user:senior")
        assert e.value.code == code
    (listed,) = svc.actions.list_for_case(case_id)
    assert listed["id"] == a["id"] and listed["deliveries"][0]["status"] == "pending"


@pytest.mark.parametrize(
    "trigger, match, actions",
    [
        ("later", {}, ["notify"]),
        ("decision", {"decision": "maybe"}, ["notify"]),
        ("decision", {"decision": "csam", "classification": ["grooming"]}, ["notify"]),
        ("decision", {"decision": "cse", "classification": ["A1"]}, ["notify"]),
        ("decision", {"decision": "csam", "bank": "x"}, ["notify"]),
        ("decision", {"decision": "csam"}, []),
        ("decision", {"decision": "csam"}, ["nuke"]),
        ("decision", {"decision": "csam"}, [{"kind": "notify", "params": "x"}]),
        ("auto", {"min_confidence": 2}, ["notify"]),
        ("auto", {"min_confidence": True}, ["notify"]),
        ("auto", {"category": "A1"}, ["notify"]),
        ("auto", {"bank": ""}, ["notify"]),
        ("auto", {"decision": "csam"}, ["notify"]),
    ],
)
def test_invalid_policies_are_refused(svc, trigger, match, actions):
    with pytest.raises(SafeholdError) as e:
        svc.actions.create_policy("p", trigger, match, actions)
    assert e.value.code == "policy.invalid"


@pytest.mark.parametrize("actions", [["notify", "notify"], ["notify", {"kind": "notify", "params": {"to": "x"}}]])
def test_a_kind_listed_twice_is_refused(svc, actions):
    with pytest.raises(SafeholdError) as e:
        svc.actions.create_policy("p", "decision", {"decision": "csam"}, actions)
    assert e.value.code == "policy.duplicate_action" and e.value.detail == {"kind": "notify"}


def test_policy_crud_is_audited(svc):
    svc.actions.create_policy("p", "auto", {"source": "classifier"}, ["notify"], actor="user:admin")
    with pytest.raises(SafeholdError) as e:
        svc.actions.create_policy("p", "auto", {}, ["notify"])
    assert e.value.code == "policy.exists"
    out = svc.actions.update_policy("p", actions=["notify", "block_content"], actor="user:admin")
    assert out["actions"] == ["notify", "block_content"] and out["updated_by"] == "user:admin"
    assert svc.actions.get_policy("p")["match"] == {"source": "classifier"}
    with pytest.raises(SafeholdError) as e:  # a decision's match for an automatic policy: its trigger refuses it
        svc.actions.update_policy("p", match={"decision": "csam"})
    assert (e.value.code, e.value.status, e.value.detail) == ("policy.trigger_mismatch", 409, {"trigger": "auto"})
    svc.actions.delete_policy("p", actor="user:admin")
    with pytest.raises(SafeholdError) as e:
        svc.actions.get_policy("p")
    assert e.value.code == "policy.not_found"
    actions = [r["action"] for r in svc.audit.list() if r["target"] == "policy:p"]
    assert actions == ["policy.create", "policy.update", "policy.delete"]
