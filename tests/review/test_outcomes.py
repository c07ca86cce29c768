"""Labelled outcomes of classifier hits, kept with the decision that closes their case, and the precision they give
per threshold; and a classifier hit alone never reaches an authority without a person's confirmed finding."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from safehold.auth.apikeys import Principal
from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.store.models import ClassifierOutcome
from tests.classifiers.plugins import picture
from tests.review.helpers import ALICE, BOB, media_case

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(home=tmp_path / "home", database_url=database_url, classifiers=["test_brightness"])


def hit(svc, content_id: str, level: int) -> int:
    body = {"type": "content", "content": {"id": content_id}}
    out = svc.events.ingest(PLATFORM, body, file=picture(level), filename="p.jpg", idempotency_key=content_id)
    return out["cases"][0]["id"]


def decide(svc, case_id: int, violating: bool) -> dict:
    svc.cases.claim(case_id, ALICE.label)
    if not violating:
        return svc.review.decide(case_id, ALICE, "not_violating")
    svc.review.decide(case_id, ALICE, "csam", "A1")
    return svc.review.confirm(case_id, BOB, True)


def outcomes(svc) -> list[tuple]:
    with svc.db.session() as s:
        rows = s.scalars(select(ClassifierOutcome).order_by(ClassifierOutcome.score))
        return [(r.classifier, r.version, r.label, r.threshold, r.outcome, r.decision, r.decided_by) for r in rows]


def test_a_closing_decision_labels_each_hit(svc):
    low, mid, high = hit(svc, "c1", 230), hit(svc, "c2", 238), hit(svc, "c3", 245)
    decide(svc, low, violating=False)
    svc.cases.claim(mid, ALICE.label)
    svc.review.decide(mid, ALICE, "csam", "A1")
    assert [o[4] for o in outcomes(svc)] == ["false_positive"]  # awaiting confirmation: not labelled yet
    svc.review.confirm(mid, BOB, True)
    decide(svc, high, violating=True)
    assert outcomes(svc) == [
        ("test_brightness", "1", "test_bright", 0.9, "false_positive", "not_violating", ALICE.label),
        ("test_brightness", "1", "test_bright", 0.9, "true_positive", "csam", BOB.label),
        ("test_brightness", "1", "test_bright", 0.9, "true_positive", "csam", BOB.label),
    ]
    rec = svc.audit.list(limit=100, action="case.confirm")[-1]
    assert rec["detail"]["classifier_outcomes"] == 1

    result = svc.classifier_policies.precision("test_brightness")
    assert result["current_threshold"] == 0.9 and "never reviewed" in result["note"]
    [label] = result["labels"]
    assert label["label"] == "test_bright" and label["reviewed"] == 3 and label["lowest_threshold_reviewed"] == 0.9
    rows = {r["threshold"]: r for r in label["thresholds"]}
    assert (rows[0.9]["reviewed"], rows[0.9]["true_positives"], rows[0.9]["false_positives"]) == (3, 2, 1)
    assert rows[0.9]["precision"] == pytest.approx(0.6667) and rows[0.9]["current"] and rows[0.9]["known"]
    assert rows[0.95]["precision"] == 1.0 and rows[0.95]["reviewed"] == 2
    assert rows[0.99]["reviewed"] == 0 and rows[0.99]["precision"] is None and rows[0.99]["known"]
    # below the threshold in force nothing was ever a hit, so nothing was reviewed: unknown, not "as above"
    assert rows[0.5]["known"] is False and rows[0.5]["precision"] is None and rows[0.5]["reviewed"] == 3


def test_the_threshold_in_force_is_among_the_rows(svc):
    svc.classifier_policies.change("test_brightness", "admin", {"threshold": 0.93})
    decide(svc, hit(svc, "c4", 238), violating=False)
    [label] = svc.classifier_policies.precision("test_brightness")["labels"]
    [current] = [r for r in label["thresholds"] if r["current"]]
    assert current["threshold"] == 0.93 and current["precision"] == 0.0
    assert outcomes(svc)[0][3] == 0.93


def test_cases_without_classifier_hits_and_unknown_classifiers_have_no_outcomes(svc):
    case_id, _ = media_case(svc)  # a platform's own classifier signal, not one of Safehold's classifiers
    decide(svc, case_id, violating=False)
    assert outcomes(svc) == []
    assert svc.classifier_policies.precision("retired_model")["labels"] == []
    with pytest.raises(SafeholdError):
        svc.classifier_policies.precision("Not-A-Name")


def test_a_classifier_hit_alone_is_never_reported_without_a_confirmed_finding(svc):
    """Even with automatic actions switched on and a policy that drafts a report, a draft needs a closed case
    with a person's confirmed finding."""
    svc.classifier_policies.change("test_brightness", "admin", {"auto_action": True})
    svc.actions.create_policy("draft", "auto", {"source": "classifier"}, ["open_report_draft"], actor="test")
    case_id = hit(svc, "c5", 245)
    assert [a["kind"] for a in svc.cases.get(case_id)["actions"]] == ["open_report_draft"]
    svc.reports.followup_once()
    assert svc.reports.list() == []
    with pytest.raises(SafeholdError) as e:
        svc.reports.draft_from_case(case_id, "test")
    assert e.value.code == "report.not_confirmed"
    svc.cases.claim(case_id, ALICE.label)
    svc.review.decide(case_id, ALICE, "csam", "A1")
    with pytest.raises(SafeholdError):  # one reviewer's finding on new material is not enough
        svc.reports.draft_from_case(case_id, "test")
    svc.review.confirm(case_id, BOB, True)
    assert svc.reports.draft_from_case(case_id, "test")["status"] == "draft"
