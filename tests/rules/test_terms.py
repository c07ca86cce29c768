"""Stored term lists: versions, roll back, bundled lists replaced or switched off, hot reload across processes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from safehold.errors import SafeholdError
from safehold.services import Services
from safehold.store.models import AuditRecord
from safehold.text.grooming import Message

# Invented tokens, so the tests do not depend on what the bundled lists hold.
PARTNER_V1 = """# partner list
# source: partner = A partner's list (test fixture)
term,category,severity,language,source
zorblat mix,csam,3,en,partner
"""
PARTNER_V2 = PARTNER_V1 + "quendle pack,csam,3,en,partner\n"
CUES = "term,category,severity\nour little vortex,grooming.exclusivity,3\n"


def _action(svc: Services, query: str) -> str:
    return svc.terms.current().guard.check(query).action


def test_bundled_lists_are_active_by_default(svc):
    names = {t["name"]: t for t in svc.terms.lists()}
    assert names["starter"]["origin"] == "bundled" and names["grooming"]["origin"] == "bundled"
    assert {d["name"] for d in svc.terms.current().lists} == {"starter", "grooming"}
    assert svc.terms.export_csv("starter").startswith("# starter term list")


def test_import_takes_effect_at_once_and_versions_roll_back(svc):
    assert _action(svc, "quendle pack") == "allow"
    first = svc.terms.put("partner", PARTNER_V1, "alice")
    assert first == {**first, "version": 1, "terms": 1, "created": True}
    assert _action(svc, "zorblat mix") == "block"
    assert _action(svc, "quendle pack") == "allow"

    second = svc.terms.put("partner", PARTNER_V2, "alice")
    assert second["version"] == 2 and _action(svc, "quendle pack") == "block"
    assert [v["active"] for v in svc.terms.versions("partner")] == [False, True]

    svc.terms.activate("partner", 1, "bob")
    assert _action(svc, "quendle pack") == "allow" and _action(svc, "zorblat mix") == "block"
    assert svc.terms.export_csv("partner") == PARTNER_V1
    assert svc.terms.export_csv("partner", 2) == PARTNER_V2
    with svc.db.session() as s:
        actions = [r.action for r in s.scalars(select(AuditRecord).where(AuditRecord.target == "terms:partner"))]
    assert actions == ["terms.import", "terms.import", "terms.activate"]


def test_same_file_again_is_a_safe_retry_and_a_different_one_conflicts(svc):
    svc.terms.put("partner", PARTNER_V1, "alice", version=5)
    again = svc.terms.put("partner", PARTNER_V1, "alice", version=5)
    assert again["created"] is False and len(svc.terms.versions("partner")) == 1
    with pytest.raises(SafeholdError) as exc:
        svc.terms.put("partner", PARTNER_V2, "alice", version=5)
    assert exc.value.code == "terms.version_exists" and exc.value.status == 409
    assert svc.terms.put("partner", "# version: 9\n" + PARTNER_V2, "alice")["version"] == 9


def test_a_stored_list_replaces_the_bundled_one_and_delete_restores_it(svc):
    assert _action(svc, "zorblat mix") == "allow"
    before = len(svc.terms.current().guard._matcher)
    result = svc.terms.put("starter", PARTNER_V1, "alice")
    assert result["version"] > 1  # above the bundled list's version
    assert len(svc.terms.current().guard._matcher) == 1 and _action(svc, "zorblat mix") == "block"
    assert svc.terms.delete("starter", "alice")["bundled_restored"] is True
    assert len(svc.terms.current().guard._matcher) == before and _action(svc, "zorblat mix") == "allow"


def test_grooming_cues_feed_the_grooming_scorer_only(svc):
    svc.terms.put("house_cues", CUES, "alice")
    svc.terms.set_enabled("grooming", False, "alice")  # only the stored cue is left
    detectors = svc.terms.current()
    state = detectors.grooming.new_state()
    detectors.grooming.add(state, Message("a", "this is our little vortex, ok?"))
    assert set(state.authors["a"].stages) == {"exclusivity"}
    detectors.grooming.add(state, Message("a", "are you home alone"))
    assert set(state.authors["a"].stages) == {"exclusivity"}  # the bundled cues are off
    assert "grooming.exclusivity" not in detectors.solicitation.score("our little vortex").categories
    svc.terms.set_enabled("grooming", True, "alice")
    state = svc.terms.current().grooming.new_state()
    svc.terms.current().grooming.add(state, Message("a", "are you home alone"))
    assert "risk_assessment" in state.authors["a"].stages


def test_another_process_picks_up_a_change_without_restart(svc, settings):
    other = Services(settings, load_index=False)
    try:
        assert _action(other, "zorblat mix") == "allow"
        svc.terms.put("partner", PARTNER_V1, "alice")
        assert _action(other, "zorblat mix") == "allow"  # not yet: other has not polled
        assert other.terms.sync() is True and _action(other, "zorblat mix") == "block"
        assert other.terms.sync() is False  # nothing new
        svc.terms.set_enabled("partner", False, "alice")
        other.maintain_once()  # the upkeep loop polls
        assert _action(other, "zorblat mix") == "allow"
    finally:
        other.close()


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda t: t.put("Bad Name", PARTNER_V1, "a"), "terms.invalid_name"),
        (lambda t: t.put("x", "term,category\nfine,NOT A SLUG\n", "a"), "terms.invalid_csv"),
        (lambda t: t.put("x", b"\xff\xfe\x00bad", "a"), "terms.invalid_csv"),
        (lambda t: t.put("x", "", "a"), "terms.invalid_csv"),
        (lambda t: t.put("x", PARTNER_V1, "a", version=0), "terms.invalid_version"),
        (lambda t: t.activate("starter", 99, "a"), "terms.version_not_found"),
        (lambda t: t.export_csv("nope"), "terms.not_found"),
        (lambda t: t.versions("nope"), "terms.not_found"),
        (lambda t: t.delete("starter", "a"), "terms.not_found"),
        (lambda t: t.set_enabled("nope", False, "a"), "terms.not_found"),
    ],
)
def test_bad_input_is_refused_with_a_stable_code(svc, call, code):
    with pytest.raises(SafeholdError) as exc:
        call(svc.terms)
    assert exc.value.code == code
    assert {d["name"] for d in svc.terms.current().lists} == {"starter", "grooming"}  # nothing changed


def test_an_operator_model_file_drives_the_conversation_scorer(settings, tmp_path):
    from array import array

    from safehold.text.grooming.model import GroomingModel

    shipped = Services(settings, load_index=False)  # no model file configured: the model in the package
    try:
        assert shipped.terms.current().grooming.model is GroomingModel.default()
    finally:
        shipped.close()
    path = tmp_path / "model.json"
    GroomingModel({"rule_risk": 8.0}, array("f", [0.0] * 16), -4.0).save(path)
    settings.grooming_model = path
    with_model = Services(settings, load_index=False)
    try:
        scorer = with_model.terms.current().grooming
        assert scorer.model is not None and scorer.model.weights == {"rule_risk": 8.0}
        assert scorer.alert_threshold == settings.grooming_alert_threshold
    finally:
        with_model.close()
    path.write_text("{not json")
    with pytest.raises(SafeholdError) as exc:
        Services(settings, load_index=False)
    assert exc.value.code == "grooming.invalid_model"
