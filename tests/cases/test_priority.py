"""The priority formula, its bands and the SLA settings' validation (no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from safehold.cases import priority as prio
from safehold.errors import SafeholdError

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_score_takes_top_severity_and_that_categorys_confidence():
    s = prio.score([("other", 1.0), ("A1", 0.6), ("A2", 0.9), ("A1", 0.7)])
    assert (s.category, s.severity, s.confidence) == ("A1", 1.0, 0.7)
    # Unknown categories count as 'other' but keep their name; ties go to the more confident signal.
    s = prio.score([("csam", 0.5), ("sextortion", 0.9), ("weird-slug", 1.0)])
    assert (s.category, s.severity, s.confidence) == ("sextortion", 0.8, 0.9)
    assert prio.score([("my-slug", 1.0)]) == prio.Score("my-slug", 0.4, 1.0)
    assert prio.score([]).severity == 0.0
    # Order does not matter.
    pairs = [("B1", 0.3), ("A2", 0.5), ("A2", 0.4), (None, 1.0)]
    assert prio.score(pairs) == prio.score(list(reversed(pairs)))


def test_age_factor_climbs_half_over_three_days():
    assert prio.age_factor(0) == 1.0
    assert prio.age_factor(36) == pytest.approx(1.25)
    assert prio.age_factor(72) == prio.age_factor(1000) == 1.5
    assert prio.age_factor(-5) == 1.0  # clock skew never lowers


def test_contract_examples():
    exact_a1 = prio.score([("A1", 1.0)])
    assert prio.priority(exact_a1, T0, T0) == 1.0 and prio.band_of(1.0) == "P1"
    other = prio.score([("other", 1.0)])
    assert prio.band_of(prio.priority(other, T0, T0)) == "P3"
    assert prio.band_of(prio.priority(other, T0, at(53))) == "P3"
    assert prio.band_of(prio.priority(other, T0, at(72))) == "P2"


def test_bands_and_urgency():
    assert [prio.band_of(v) for v in (1.4, 0.8, 0.79, 0.55, 0.3, 0.29, 0.0)] == [
        "P1",
        "P1",
        "P2",
        "P2",
        "P3",
        "P4",
        "P4",
    ]
    assert prio.more_urgent("P3", "P1") == prio.more_urgent("P1", "P3") == "P1"
    assert prio.due_at(T0, "P2", {"P2": 24}) == at(24)


def test_sla_validation():
    assert prio.check_sla_hours({"P1": 2, "P4": 0.5}) == {"P1": 2, "P4": 0.5}
    for bad in ({}, [], {"P5": 3}, {"P1": 0}, {"P1": -1}, {"P1": True}, {"P1": "4"}, {"P1": float("nan")}):
        with pytest.raises(SafeholdError) as e:
            prio.check_sla_hours(bad)
        assert e.value.code == "settings.invalid_sla"
    with pytest.raises(SafeholdError):
        prio.check_sla_hours({"P1": prio.MAX_SLA_HOURS + 1})
    # A stored value that is no longer valid falls back to the default.
    assert prio.effective_sla({"P1": 1, "P2": -3, "zz": 9}) == {"P0": 1, "P1": 1, "P2": 24, "P3": 72, "P4": 168}
    assert prio.effective_sla(None) == {"P0": 1, "P1": 4, "P2": 24, "P3": 72, "P4": 168}


def sig(category="grooming", confidence=0.9, **detail) -> prio.SignalFacts:
    from safehold.cases.detection import DetectionSignal

    return DetectionSignal(source="grooming", category=category, confidence=confidence, detail=detail)


def test_urgency_rule_minor_at_risk_and_high_gives_p0():
    minor = {"participant": "kid", "age": 13, "age_source": "declared"}
    assert prio.urgent_band([sig(level="high", minor_at_risk=minor)]) == "P0"
    # The level is the detector's own when it gives one, else read from the confidence (high >= 0.7).
    assert prio.urgent_band([sig(confidence=0.9, minor_at_risk=True)]) == "P0"
    assert prio.urgent_band([sig(confidence=0.9, level="medium", minor_at_risk=True)]) is None
    assert prio.urgent_band([sig(confidence=0.5, minor_at_risk=True)]) is None
    # The rule is about any detection, not one category or one age.
    assert prio.urgent_band([sig(category="sextortion", level="high", minor_at_risk={"age": 16})]) == "P0"
    assert prio.urgent_band([sig(level="high", minor_at_risk=None), sig(level="high")]) is None
    [why, score] = prio.reasons([sig(level="high", minor_at_risk=minor)], prio.score([("grooming", 0.9)]))
    assert why.startswith("P0 (rule minor_at_risk)") and "age 13" in why and "level high" in why
    assert score.startswith("Score 0.63")
    # No score reaches P0: only a rule does.
    assert prio.band_of(prio.priority(prio.score([("A1", 1.0)]), at(0), at(10_000))) == "P1"


def test_escalation_never_reaches_the_rule_band():
    assert [prio.escalated(b) for b in ("P4", "P3", "P2", "P1", "P0")] == ["P3", "P2", "P1", "P1", "P0"]
    assert prio.floor("P0") > prio.priority(prio.score([("A1", 1.0)]), at(0), at(10_000))
