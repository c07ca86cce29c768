"""Wellness settings: admins set defaults, reviewers only tighten them; exposure is counted from the audit log."""

from __future__ import annotations

import pytest

from safehold.errors import SafeholdError
from safehold.review.wellness import DEFAULTS, looser_field, tighten


def test_tighten_keeps_the_protective_value():
    assert tighten(DEFAULTS, {"blur": False, "video_autoplay": True}) == DEFAULTS
    loose = {**DEFAULTS, "blur": False, "video_autoplay": True}
    assert tighten(loose, {"blur": True, "video_autoplay": False}) == DEFAULTS
    tight = tighten(DEFAULTS, {"daily_cap": 100, "break_every": 500, "break_minutes": 20})
    assert (tight["daily_cap"], tight["break_every"], tight["break_minutes"]) == (100, 50, 20)
    assert tighten(tight, {"daily_cap": 100, "break_minutes": 20}) == tight  # idempotent
    assert looser_field(DEFAULTS, {"daily_cap": 301}) == "daily_cap"
    assert looser_field(DEFAULTS, {"break_minutes": 5}) == "break_minutes"
    assert looser_field(DEFAULTS, {"greyscale": True, "daily_cap": 10}) is None


def test_defaults_validation_and_audit(svc):
    assert svc.wellness.defaults() == DEFAULTS
    out = svc.wellness.set_defaults({"daily_cap": 120, "greyscale": False}, actor="user:admin")
    assert out == {**DEFAULTS, "daily_cap": 120, "greyscale": False} == svc.wellness.defaults()
    rec = svc.audit.list(action="settings.update")[-1]
    assert rec["target"] == "setting:wellness_defaults" and rec["detail"]["new"]["daily_cap"] == 120
    for bad, field in (({"daily_cap": 0}, "daily_cap"), ({"blur": "yes"}, "blur"), ({"nope": 1}, "nope"),
                       ({"break_every": True}, "break_every")):  # fmt: skip
        with pytest.raises(SafeholdError) as e:
            svc.wellness.set_defaults(bad, actor="user:admin")
        assert e.value.code == "wellness.invalid" and e.value.detail["field"] == field
    with pytest.raises(SafeholdError):
        svc.wellness.set_defaults({}, actor="user:admin")


def test_reviewers_tighten_but_never_loosen(svc):
    svc.wellness.set_defaults({"greyscale": False, "daily_cap": 200}, actor="user:admin")
    ok = svc.wellness.validate_user_prefs({"greyscale": True, "daily_cap": 50, "break_minutes": 15})
    assert ok == {"greyscale": True, "daily_cap": 50, "break_minutes": 15}
    assert svc.wellness.validate_user_prefs({"greyscale": False}) == {"greyscale": False}  # the default: allowed
    looser = ({"blur": False}, {"daily_cap": 201}, {"video_autoplay": True}, {"break_minutes": 9})
    for loose in looser:
        (field,) = loose
        with pytest.raises(SafeholdError) as e:
            svc.wellness.validate_user_prefs(loose)
        assert e.value.code == "wellness.cannot_loosen" and e.value.detail == {"field": field}
    eff = svc.wellness.effective(ok)
    assert eff["greyscale"] is True and eff["daily_cap"] == 50 and eff["break_minutes"] == 15
    # An admin tightening later wins over an older, looser choice; broken stored values are ignored.
    svc.wellness.set_defaults({"daily_cap": 20}, actor="user:admin")
    assert svc.wellness.effective({"daily_cap": 50, "blur": "junk"})["daily_cap"] == 20


def test_user_prefs_read_from_the_users_table(svc):
    user = svc.users.create("rita", "correct horse battery", "reviewer")
    svc.users.set_wellness(user.id, {"daily_cap": 7}, actor="user:rita")
    assert svc.wellness.user_prefs(user.id) == {"daily_cap": 7}
    assert svc.wellness.user_prefs(None) == {}


def test_exposure_counts_reveals_and_breaks(svc):
    def reveal(actor):
        svc.audit.record(None, actor, "media.reveal", "case_item:1", {})

    prefs = {"break_every": 2, "daily_cap": 5}
    assert svc.wellness.exposure("user:a", prefs) == {
        "today": 0, "cap": 5, "remaining": 5, "since_break": 0, "break_due": False
    }  # fmt: skip
    reveal("user:a")
    reveal("user:a")
    reveal("user:b")
    seen = svc.wellness.exposure("user:a", prefs)
    assert (seen["today"], seen["remaining"], seen["since_break"], seen["break_due"]) == (2, 3, 2, True)
    svc.wellness.take_break("user:a")
    assert svc.audit.list(action="review.break")[-1]["actor"] == "user:a"
    reveal("user:a")
    seen = svc.wellness.exposure("user:a", prefs)
    assert (seen["today"], seen["since_break"], seen["break_due"]) == (3, 1, False)
    assert svc.wellness.exposure("user:b", {})["cap"] == DEFAULTS["daily_cap"]
