from safehold.text import Matcher, load_list
from safehold.text.grooming.scorer import CATEGORY_PREFIX, STAGES

LANGUAGES = {"en", "es", "pt", "fr", "de"}


def test_every_stage_has_cues_in_every_language():
    terms = load_list("grooming").terms
    have = {(t.category, t.language) for t in terms}
    for stage in STAGES:
        for lang in LANGUAGES:
            assert (CATEGORY_PREFIX + stage, lang) in have, (stage, lang)


def test_every_row_cites_a_defined_source():
    cues = load_list("grooming")
    assert {t.source for t in cues.terms} <= set(cues.sources)
    assert {"oconnell2003", "black2015", "thorn2024"} <= set(cues.sources)


def test_cues_match_through_normalisation():
    matcher = Matcher(load_list("grooming").terms)
    found = {h.term.category for h in matcher.find("R U home ALONE?? dont tell ur parents, delete this chat")}
    assert {"grooming.risk_assessment"} <= found
    assert "grooming.exclusivity" in found
