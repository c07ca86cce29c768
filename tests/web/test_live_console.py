"""The console's Live page: streams under watch with their risk, blurred previews of their last sampled frames, and
a one-click interrupt for senior reviewers (CSRF-checked like every console form)."""

from __future__ import annotations

import pytest

from tests.media import jpeg


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_live_page_shows_streams_and_a_senior_reviewer_interrupts_one(svc, open_console, staff_users):
    svc.live.register("apikey:platform", "s-9", "u-9")
    svc.live.signal("apikey:platform", "s-9", "viewer_report")
    svc.live.push("apikey:platform", "s-9", jpeg(3, (160, 120)), 1_700_000_000.0)

    rita = open_console("rita")
    page = rita.get("/console/live")
    assert page.status_code == 200 and "s-9" in page.text and "elevated" in page.text
    assert "/console/live/s-9/frames/0/preview" in page.text and "Interrupt" not in page.text  # rita: reviewer
    preview = rita.get("/console/live/s-9/frames/0/preview")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert rita.get("/console/live/s-9/frames/1/preview").status_code == 404
    assert rita.post("/console/live/s-9/interrupt").status_code == 403

    sam = open_console("sam")
    assert "Interrupt" in sam.get("/console/live").text
    assert sam.client.post("/console/live/s-9/interrupt", data={}).status_code == 403  # no CSRF field
    r = sam.post("/console/live/s-9/interrupt")
    assert r.status_code == 303 and "stream_interrupted" in r.headers["location"]
    stream = svc.live.get("s-9")
    assert stream["status"] == "interrupted"
    (action,) = svc.actions.list_for_case(stream["case_id"])
    assert action["kind"] == "interrupt" and action["params"]["stream_id"] == "s-9" and action["actor"] == "user:sam"
