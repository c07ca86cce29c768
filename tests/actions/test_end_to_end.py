"""From a reviewer's confirmed finding to signed requests at the platform's receiver."""

from __future__ import annotations

import pytest

from safehold.actions.signing import verify
from tests.review.helpers import ALICE, BOB, media_case


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_confirmed_finding_reaches_the_platform(svc, receiver):
    _, secret = svc.webhooks.create("platform", receiver.url)
    case_id, _ = media_case(svc, content_id="img-55812", account_id="u-829")
    svc.cases.claim(case_id, ALICE.label)
    svc.review.decide(case_id, ALICE, "csam", "A1")
    assert svc.actions.list_for_case(case_id) == []  # new material: nothing acts before the second reviewer
    svc.review.confirm(case_id, BOB, agree=True)
    assert svc.dispatcher.run_once() == 2
    events = sorted(r.headers["safehold-event"] for r in receiver.requests)
    assert events == ["action.remove_content", "action.suspend_account"]
    for r in receiver.requests:
        assert verify(secret, r.headers["safehold-signature"], r.body)
        assert r.json["case"] == {"id": case_id, "content_id": "img-55812", "account_id": "u-829",
                                  "decision": "csam", "classification": "A1", "category": "A1"}  # fmt: skip
    kinds = {a["kind"]: a for a in svc.cases.get(case_id)["actions"]}
    assert set(kinds) == {"remove_content", "suspend_account", "preserve_evidence", "open_report_draft"}
    statuses = {a["kind"]: [d["status"] for d in a["deliveries"]] for a in svc.actions.list_for_case(case_id)}
    assert statuses == {"remove_content": ["delivered"], "suspend_account": ["delivered"],
                        "preserve_evidence": [], "open_report_draft": []}  # fmt: skip
