"""Policies' internal actions (preserve evidence, open a report draft) carried out at least once."""

from __future__ import annotations

from sqlalchemy import select

from safehold.store.models import CaseAction
from tests.reporting.helpers import confirmed_case
from tests.review.helpers import ALICE, media_case


def pending(svc) -> list[tuple[int, str]]:
    with svc.db.session() as s:
        return list(s.execute(select(CaseAction.case_id, CaseAction.kind).where(CaseAction.done_at.is_(None),
                              CaseAction.kind.in_(("preserve_evidence", "open_report_draft")))))  # fmt: skip


def test_a_confirmed_case_is_preserved_and_drafted(svc):
    case_id, item_id = confirmed_case(svc, known=False)  # the seeded confirmed-csam policy fires
    assert sorted(k for _, k in pending(svc)) == ["open_report_draft", "preserve_evidence"]
    assert svc.reports.followup_once() == 2
    assert pending(svc) == [] and svc.reports.followup_once() == 0
    [report] = svc.reports.list(case_id=case_id)
    assert report["status"] == "draft" and report["created_by"] == "system:followup"
    assert svc.evidence.for_item(item_id) is not None


def test_failures_are_retried_next_round(svc, monkeypatch):
    confirmed_case(svc)
    real = svc.evidence.preserve_case
    calls = []

    def flaky(case_id, actor):
        calls.append(case_id)
        if len(calls) <= 2:
            raise RuntimeError("evidence store briefly away")
        return real(case_id, actor)

    monkeypatch.setattr(svc.evidence, "preserve_case", flaky)
    assert svc.reports.followup_once() == 0 and len(pending(svc)) == 2
    assert svc.reports.followup_once() == 2 and pending(svc) == []


def test_an_action_that_can_never_be_done_is_not_retried_forever(svc):
    case_id, _ = media_case(svc)  # still open: nothing confirmed to report
    svc.actions.take(case_id, "open_report_draft", ALICE.label)
    assert svc.reports.followup_once() == 1 and pending(svc) == []
    assert svc.reports.list() == []
