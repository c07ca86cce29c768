"""Review decisions, the second reviewer's confirmation, reveals and their records, and banking an item."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from safehold.errors import SafeholdError
from tests.review.helpers import ALICE, BOB, SENIOR, audit_actions, media_case


def claimed_case(svc, who=ALICE, **kw) -> tuple[int, int]:
    case_id, item_id = media_case(svc, **kw)
    svc.cases.claim(case_id, who.label)
    return case_id, item_id


def _code(call, *args, **kw) -> tuple[str, int]:
    with pytest.raises(SafeholdError) as e:
        call(*args, **kw)
    return e.value.code, e.value.status


def test_decisions_are_validated(svc):
    case_id, _ = claimed_case(svc)
    for decision, classification in (("csam", None), ("csam", "C1"), ("cse", "A1"), ("not_violating", "A1"),
                                     ("delete", None)):  # fmt: skip
        code, status = _code(svc.review.decide, case_id, ALICE, decision, classification)
        assert (code, status) == ("review.invalid_decision", 400), (decision, classification)
    assert _code(svc.review.decide, case_id, ALICE, "escalate", note="x" * 10_001)[0] == "review.invalid_note"


def test_a_decision_needs_the_callers_claim(svc):
    case_id, _ = media_case(svc)
    assert _code(svc.review.decide, case_id, ALICE, "not_violating") == ("case.not_claimed", 409)
    svc.cases.claim(case_id, BOB.label)
    assert _code(svc.review.decide, case_id, ALICE, "not_violating") == ("case.claimed", 409)
    assert _code(svc.review.decide, 999_999, ALICE, "not_violating") == ("case.not_found", 404)


def test_not_violating_closes(svc):
    case_id, _ = claimed_case(svc)
    case = svc.review.decide(case_id, ALICE, "not_violating", note="a landscape")
    assert case["status"] == "closed" and case["decision"] == "not_violating" and case["claimed_by"] is None
    assert case["decided_by"] == ALICE.label and case["closed_at"] and case["actions"] == []
    assert [(d["kind"], d["decision"], d["note"]) for d in case["decisions"]] == [
        ("decide", "not_violating", "a landscape")
    ]
    rec = audit_actions(svc, "case.decide")[-1]
    assert rec["target"] == f"case:{case_id}" and rec["detail"]["status"] == "closed"
    assert _code(svc.review.decide, case_id, ALICE, "escalate") == ("case.closed", 409)


def test_new_material_waits_for_a_second_reviewer(svc):
    case_id, _ = claimed_case(svc)
    case = svc.review.decide(case_id, ALICE, "csam", "A2")
    assert case["status"] == "awaiting_confirmation" and case["claimed_by"] is None
    assert (case["decision"], case["classification"], case["actions"]) == ("csam", "A2", [])
    assert svc.cases.counts()["awaiting_confirmation"] == 1
    assert _code(svc.review.decide, case_id, BOB, "not_violating") == ("review.awaiting_confirmation", 409)
    assert _code(svc.review.confirm, case_id, ALICE, True) == ("review.same_reviewer", 409)
    case = svc.review.confirm(case_id, BOB, True, note="agree")
    assert case["status"] == "closed" and case["confirmed_by"] == BOB.label and case["confirmed_at"]
    assert [d["kind"] for d in case["decisions"]] == ["decide", "confirm"]
    kinds = {a["kind"] for a in case["actions"]}
    assert {"remove_content", "suspend_account", "open_report_draft"} <= kinds  # the seeded confirmed-csam policy
    assert audit_actions(svc, "case.confirm")[-1]["detail"]["actions"] == len(case["actions"])
    assert _code(svc.review.confirm, case_id, SENIOR, True) == ("case.closed", 409)


def test_confirmation_needs_a_pending_finding(svc):
    case_id, _ = claimed_case(svc)
    assert _code(svc.review.confirm, case_id, BOB, True) == ("review.not_awaiting", 409)


def test_known_match_closes_at_once(svc):
    case_id, _ = claimed_case(svc, known=True)
    case = svc.review.decide(case_id, ALICE, "cse", "sextortion")
    assert case["status"] == "closed" and case["confirmed_by"] is None
    assert {a["kind"] for a in case["actions"]} >= {"remove_content", "restrict_account"}


def test_escalation_and_senior_decisions(svc):
    case_id, _ = claimed_case(svc)
    before = svc.cases.get(case_id)
    case = svc.review.decide(case_id, ALICE, "escalate", note="unsure of age")
    assert case["status"] == "escalated" and case["claimed_by"] is None and case["decision"] is None
    assert int(case["band"][1]) == max(int(before["band"][1]) - 1, 1)
    assert case["priority"] >= before["priority"] and case["due_at"] <= before["due_at"]
    svc.cases.claim(case_id, BOB.label)
    assert _code(svc.review.decide, case_id, BOB, "not_violating") == ("review.senior_required", 403)
    case = svc.review.decide(case_id, SENIOR, "csam", "B1")  # no claim needed on an escalated case
    assert case["status"] == "awaiting_confirmation" and case["decided_by"] == SENIOR.label


def test_disagreement_escalates(svc):
    case_id, _ = claimed_case(svc)
    svc.review.decide(case_id, ALICE, "csam", "A1")
    case = svc.review.confirm(case_id, BOB, False, note="adult")
    assert case["status"] == "escalated" and case["actions"] == [] and case["confirmed_by"] is None
    assert [d["kind"] for d in case["decisions"]] == ["decide", "overturn"]
    assert audit_actions(svc, "case.overturn")[-1]["actor"] == BOB.label
    case = svc.review.decide(case_id, SENIOR, "not_violating")
    assert case["status"] == "closed"


def test_view_is_recorded_once_per_window(svc):
    case_id, _ = media_case(svc)
    assert svc.review.view(case_id, ALICE)["id"] == case_id
    svc.review.view(case_id, ALICE)
    svc.review.view(case_id, BOB)
    assert [r["actor"] for r in audit_actions(svc, "case.view")] == [ALICE.label, BOB.label]
    assert _code(svc.review.view, 999_999, ALICE)[0] == "case.not_found"


def test_preview_is_not_a_reveal(svc):
    _, item_id = media_case(svc)
    data, ctype = svc.review.preview(item_id, ALICE)
    assert ctype == "image/jpeg" and Image.open(io.BytesIO(data)).mode == "L"
    assert audit_actions(svc, "media.reveal") == [] and svc.review.reveals(item_id) == []


def test_every_reveal_is_recorded(svc):
    case_id, item_id = media_case(svc)
    original = svc.vault.get(svc.cases.item(item_id)["sha256"])
    for who in (ALICE, ALICE, BOB):
        assert svc.review.reveal(item_id, who) == (original, "image/jpeg")
    seen = svc.review.reveals(item_id)
    assert [r["actor"] for r in seen] == [ALICE.label, ALICE.label, BOB.label] and all(r["at"] for r in seen)
    rec = audit_actions(svc, "media.reveal")[0]
    assert rec["target"] == f"case_item:{item_id}"
    assert rec["detail"] == {"case_id": case_id, "sha256": svc.cases.item(item_id)["sha256"],
                             "filename": "upload-1.jpg", "media_type": "image"}  # fmt: skip
    assert svc.wellness.exposure(ALICE.label)["today"] == 2


def test_reveals_stop_at_the_daily_cap(svc):
    _, item_id = media_case(svc)
    svc.wellness.set_defaults({"daily_cap": 2}, actor="user:admin")
    svc.review.reveal(item_id, ALICE)
    svc.review.reveal(item_id, ALICE)
    assert _code(svc.review.reveal, item_id, ALICE) == ("review.exposure_cap", 429)
    assert len(svc.review.reveals(item_id)) == 2  # the refused reveal left no record
    svc.review.reveal(item_id, BOB)  # the cap is per reviewer


def test_a_reviewers_own_lower_cap_applies(svc):
    user = svc.users.create("carol", "correct horse battery", "reviewer")
    svc.users.set_wellness(user.id, svc.wellness.validate_user_prefs({"daily_cap": 1}), actor="user:carol")
    carol = user.principal()
    _, item_id = media_case(svc)
    svc.review.reveal(item_id, carol)
    assert _code(svc.review.reveal, item_id, carol)[0] == "review.exposure_cap"


def test_items_without_media(svc):
    from safehold.cases.service import Detection, DetectionSignal

    ref = svc.cases.record(
        Detection(source="grooming", content_id="msg-1", text="hello", signals=[DetectionSignal(source="grooming")]),
        actor="apikey:platform",
    )
    item_id = svc.cases.get(ref.id)["items"][0]["id"]
    for call in (svc.review.preview, svc.review.reveal, svc.review.exif):
        assert _code(call, item_id, ALICE) == ("review.no_media", 404)
    assert _code(svc.review.reveal, 999_999, ALICE)[0] == "case.item_not_found"


def test_exif_view_is_recorded(svc):
    exif = Image.Exif()
    exif[0x010F] = "ExampleCam"
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(buf, "JPEG", exif=exif)
    case_id, item_id = media_case(svc, data=buf.getvalue())
    assert svc.review.exif(item_id, ALICE)["exif"]["Make"] == "ExampleCam"
    rec = audit_actions(svc, "media.exif_view")[-1]
    assert (rec["actor"], rec["target"], rec["detail"]) == (ALICE.label, f"case_item:{item_id}", {"case_id": case_id})
    assert svc.review.reveals(item_id) == []  # metadata is not a reveal


def test_add_a_confirmed_item_to_a_bank(svc):
    svc.banks.create("own", kind="block")
    svc.banks.create("trusted", kind="allow")
    case_id, item_id = claimed_case(svc)
    assert _code(svc.review.add_to_bank, case_id, item_id, "own", SENIOR) == ("review.not_confirmed", 409)
    svc.review.decide(case_id, ALICE, "csam", "A1")
    assert _code(svc.review.add_to_bank, case_id, item_id, "own", SENIOR)[0] == "review.not_confirmed"
    svc.review.confirm(case_id, BOB, True)
    other_case, other_item = media_case(svc, seed=2)
    assert _code(svc.review.add_to_bank, case_id, other_item, "own", SENIOR)[0] == "review.item_not_in_case"
    assert _code(svc.review.add_to_bank, case_id, item_id, "trusted", SENIOR)[0] == "review.bank_not_block"
    assert _code(svc.review.add_to_bank, case_id, item_id, "nobank", SENIOR)[0] == "bank.not_found"
    out = svc.review.add_to_bank(case_id, item_id, "own", SENIOR)
    assert out["added"] >= 2 and out["case_id"] == case_id and out["item_id"] == item_id
    entry = out["entries"][0]
    assert entry["category"] == "A1" and entry["note"] == f"case {case_id}" and entry["added_by"] == SENIOR.label
    rec = audit_actions(svc, "case.add_to_bank")[-1]
    assert rec["target"] == f"case:{case_id}" and rec["detail"]["bank"] == "own"
    assert svc.review.add_to_bank(case_id, item_id, "own", SENIOR)["added"] == 0  # already there
    # Re-uploads of the same picture now match the bank.
    data = svc.vault.get(svc.cases.item(item_id)["sha256"])
    assert svc.scans.scan_bytes(data).to_dict()["verdict"] != "no_match"


def test_parallel_reveals_never_overrun_the_cap(svc):
    from concurrent.futures import ThreadPoolExecutor

    _, item_id = media_case(svc)
    svc.wellness.set_defaults({"daily_cap": 3}, actor="user:admin")

    def reveal(_):
        try:
            svc.review.reveal(item_id, ALICE)
            return "ok"
        except SafeholdError as e:
            return e.code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(reveal, range(8)))
    assert results.count("ok") == 3 and results.count("review.exposure_cap") == 5
    assert len(svc.review.reveals(item_id)) == 3
    assert svc.audit.verify().ok
