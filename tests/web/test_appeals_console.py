"""The appeals page: staff see appeals, a reviewer who took no part in the decision records the second review."""

from __future__ import annotations

import pytest

from safehold.auth.apikeys import Principal
from safehold.cases.detection import Detection, DetectionSignal


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reviewer_reviews_an_appeal_in_the_console(svc, open_console, staff_users):
    d = Detection(source="user_report", content_id="c-1", signals=[DetectionSignal("user_report", category="other")])
    case_id = svc.cases.record(d, actor="apikey:platform").id
    rita = Principal(name="rita", role="reviewer", user_id=1)
    svc.cases.claim(case_id, rita.label)
    svc.review.decide(case_id, rita, "not_violating")
    appeal = svc.appeals.create(Principal(name="platform", role="platform", key_prefix="p"), {"case_id": case_id})

    author = open_console("rita")
    assert f"/console/appeals/{appeal['id']}/review" in author.get("/console/appeals").text
    refused = author.post(f"/console/appeals/{appeal['id']}/review", {"outcome": "overturned"})
    assert refused.status_code == 409 and "appeal.same_reviewer" in refused.text

    sam = open_console("sam")
    done = sam.post(f"/console/appeals/{appeal['id']}/review", {"outcome": "upheld", "note": "stands"})
    assert done.status_code == 303 and "appeal_reviewed" in done.headers["location"]
    assert svc.appeals.get(appeal["id"], rita)["status"] == "upheld"  # rita is staff: she reads every appeal
    assert "sam" in sam.get("/console/appeals?status=all").text
