"""The console's feedback page: opinions for exchanges by status and per entry, and the retry of a failed one."""

from __future__ import annotations

import pytest

from tests.sharing.fakes import rejected
from tests.sharing.test_feedback import decide, entry_ids, exchanges, matched_case  # noqa: F401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_opinion_is_seen_and_retried(svc, exchanges, open_console, staff_users):  # noqa: F811
    exchanges["peer"].failures = [rejected()]
    case_id = matched_case(svc)
    decide(svc, case_id, "not_violating")
    svc.feedback.run_once(limit=1)
    otto = open_console(staff_users["auditor"])  # reads, may not retry
    failed = otto.get("/console/feedback?status=failed").text
    assert "exchange.rejected" in failed and f"/console/cases/{case_id}" in failed and "Retry" not in failed
    sam = open_console(staff_users["senior_reviewer"])
    [row] = svc.feedback.list(status="failed")
    assert "Retry" in sam.get("/console/feedback?status=failed").text
    r = sam.post(f"/console/feedback/{row['id']}/retry")
    assert r.status_code == 303 and svc.feedback.get(row["id"])["status"] == "queued"
    svc.feedback.run_once()
    page = sam.get(f"/console/feedback?entry={row['entry_id']}").text
    assert "false positive" in page and "sent" in page
