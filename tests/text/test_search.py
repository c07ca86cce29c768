"""Query guard and suggestion filter: the rule table, messages, locale fallback and variant assignment."""

from __future__ import annotations

import copy
import json
import random

import pytest

from safehold.errors import SafeholdError
from safehold.text.search import ACTIONS, QueryGuard, load_messages
from safehold.text.terms import TermList

# Synthetic list: "zqxcode" stands in for a coded CSAM term so no real one appears in the tests.
TERMS = TermList.from_csv(
    "term,category,severity\n"
    "zqxcode,csam,3\n"
    "child,minor,1\n"
    "kids,minor,1\n"
    "teen,minor_ambiguous,1\n"
    "nude,sexual,1\n"
    "sex,sexual,1\n"
    "trade,trading,1\n"
    "telegram,offplatform,1\n"
    "pay or i post,sextortion,2\n",
    name="test",
)


@pytest.fixture(scope="module")
def guard() -> QueryGuard:
    return QueryGuard(TERMS)


@pytest.mark.parametrize(
    ("query", "action", "category"),
    [
        ("zqxcode", "block", "csam"),
        ("where to find zqxcode videos", "block", "csam"),
        ("child nude", "block", "minor_sexual"),
        ("teen nude", "warn", "minor_ambiguous_sexual"),
        ("teen child nude", "block", "minor_sexual"),  # the stronger row wins
        ("pay or i post", "warn", "sextortion"),
        ("kids shoes", "allow", None),
        ("sex education", "allow", None),
        ("teen movies", "allow", None),
        ("telegram trade", "allow", None),
        ("", "allow", None),
    ],
)
def test_rule_table(guard, query, action, category):
    decision = guard.check(query)
    assert decision.action == action
    assert decision.category == category
    assert decision.severity == {"allow": 0, "warn": 2, "block": 3}[action]
    assert action in ACTIONS


def test_words_inside_other_words_do_not_count(guard):
    assert guard.check("childhood nude art").action == "allow"


def test_allow_has_no_message_or_variant(guard):
    decision = guard.check("weather tomorrow")
    assert decision.message is None and decision.variant is None


def test_block_message_offers_prevention_help(guard):
    decision = guard.check("child nude", "en", bucket="s1")
    assert decision.variant in ("deterrence", "help")
    msg = decision.message
    assert msg["title"] and msg["body"]
    urls = [h["url"] for h in msg["help"]]
    assert "https://www.stopitnow.org.uk" in urls
    assert all(set(h) <= {"name", "url", "phone", "description"} for h in msg["help"])


def test_sextortion_message_offers_victim_support(guard):
    msg = guard.check("pay or i post").message
    assert any("takeitdown.ncmec.org" in h["url"] for h in msg["help"])


def test_deterrence_variant_states_illegality_and_tracing():
    guard = QueryGuard(TERMS, variants={"deterrence": 1.0, "help": 0.0})
    body = guard.check("zqxcode").message["body"]
    assert "illegal" in body and "traced" in body


def test_message_is_a_fresh_copy(guard):
    guard.check("zqxcode", bucket="a").message["help"].clear()
    assert guard.check("zqxcode", bucket="a").message["help"]


@pytest.mark.parametrize(
    ("locale", "resolved"),
    [
        ("en", "en"),
        ("pt-BR", "pt"),
        ("pt_br", "pt"),
        ("de-AT", "de"),
        ("ES", "es"),
        ("fr", "fr"),
        ("ja", "en"),
        ("", "en"),
    ],
)
def test_locale_fallback(guard, locale, resolved):
    assert guard.check("zqxcode", locale).locale == resolved
    assert guard.check("weather", locale).locale == resolved


def test_messages_differ_by_locale(guard):
    titles = {
        loc: guard.check("zqxcode", loc, bucket="same").message["title"] for loc in ("en", "es", "pt", "fr", "de")
    }
    assert len(set(titles.values())) == 5
    german = guard.check("zqxcode", "de-DE").message
    assert any("kein-taeter-werden.de" in h["url"] for h in german["help"])


def test_variant_is_stable_per_bucket(guard):
    first = {b: guard.check("zqxcode", bucket=b).variant for b in map(str, range(200))}
    again = QueryGuard(TERMS)
    assert all(again.check("zqxcode", bucket=b).variant == v for b, v in first.items())
    assert set(first.values()) == {"deterrence", "help"}


def test_variant_follows_weights():
    guard = QueryGuard(TERMS, variants={"deterrence": 0.8, "help": 0.2})
    picks = [guard.pick_variant(f"session-{i}") for i in range(20_000)]
    assert abs(picks.count("deterrence") / len(picks) - 0.8) < 0.02
    random.seed(7)
    unbucketed = [guard.pick_variant() for _ in range(20_000)]
    assert abs(unbucketed.count("help") / len(unbucketed) - 0.2) < 0.02


def test_zero_weight_variant_is_never_shown():
    guard = QueryGuard(TERMS, variants={"deterrence": 0.0, "help": 1.0})
    assert {guard.check("zqxcode", bucket=str(i)).variant for i in range(500)} == {"help"}


@pytest.mark.parametrize("variants", [{"nosuch": 1.0}, {"help": -1.0}, {"help": 0.0, "deterrence": 0.0}, {"help": "x"}])
def test_invalid_variants_rejected(variants):
    with pytest.raises(SafeholdError) as err:
        QueryGuard(TERMS, variants=variants)
    assert err.value.code == "search.invalid_variants"


def test_filter_suggestions_preserves_order_and_counts(guard):
    suggestions = ["kids shoes", "child nude", "teen movies", "zqxcode", "teen nude", "zqxcode list", "weather"]
    kept, removed = guard.filter_suggestions(suggestions, "es")
    assert kept == ["kids shoes", "teen movies", "weather"]
    assert removed == {"minor_sexual": 1, "csam": 2, "minor_ambiguous_sexual": 1}
    assert guard.filter_suggestions([]) == ([], {})


def test_decision_to_dict_is_json(guard):
    data = guard.check("teen nude", "fr", bucket="x").to_dict()
    assert json.loads(json.dumps(data))["action"] == "warn"


def test_non_string_query_rejected(guard):
    with pytest.raises(SafeholdError) as err:
        guard.check(None)
    assert err.value.code == "search.invalid_query"


def test_bundled_messages_cover_locales_and_cite_sources():
    data = load_messages()
    assert set(data["locales"]) >= {"en", "es", "pt", "fr", "de"}
    assert {"deterrence", "help"} <= set(data["variants"])
    for loc in data["locales"].values():
        for entries in loc["help"].values():
            assert all(e["source"] in data["sources"] for e in entries)


def _broken(mutate) -> dict:
    data = copy.deepcopy(load_messages())
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["locales"]["es"]["messages"]["warn"].pop("help"),
        lambda d: d["locales"]["fr"]["messages"].pop("sextortion"),
        lambda d: d["locales"]["de"]["messages"]["block"]["deterrence"].update(title=""),
        lambda d: d["locales"].pop("en"),
        lambda d: d["locales"]["pt"]["help"]["victim"][0].pop("url"),
        lambda d: d["locales"]["pt"]["help"].update(prevention=[]),
        lambda d: d["locales"]["en"]["help"]["victim"][0].update(source="nowhere"),
        lambda d: d.update(variants={}),
        lambda d: d.update(variants={"deterrence": -1, "help": 1}),
    ],
)
def test_invalid_messages_rejected(mutate):
    with pytest.raises(SafeholdError) as err:
        QueryGuard(TERMS, messages=_broken(mutate))
    assert err.value.code == "search.invalid_messages"


def test_invalid_messages_file_rejected(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    for path in (bad, tmp_path / "missing.json"):
        with pytest.raises(SafeholdError) as err:
            load_messages(path)
        assert err.value.code == "search.invalid_messages"
    with pytest.raises(SafeholdError):
        QueryGuard(TERMS, messages=["not", "a", "dict"])


def test_operator_messages_file_loads(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(load_messages()))
    assert load_messages(path)["default_locale"] == "en"


def test_starter_list_obvious_cases():
    guard = QueryGuard()
    assert guard.check("child nude").action == "block"
    assert guard.check("teen nude").action == "warn"
    for query in ("cheap flights to paris", "kids shoes", "sex education", "weather tomorrow"):
        assert guard.check(query).action == "allow", query


# ---------------------------------------------------------------- the bundled lists: languages, evasions, support


@pytest.fixture(scope="module")
def bundled() -> QueryGuard:
    return QueryGuard()


# One short sample per language: a child word with a nudity word, or the language's name for the material.
LANGUAGE_SAMPLES = {
    "en": "child nude",
    "es": "niña desnuda",
    "pt": "menina nua",
    "fr": "fillette nue",
    "de": "kinder nackt",
    "it": "bambina nuda",
    "nl": "kinderen naakt",
    "pl": "dziecko nago",
    "tr": "çocuk çıplak",
    "ru": "детское порно",
    "uk": "діти голі",
    "ar": "طفلة عارية",
    "hi": "बच्ची नंगी",
    "id": "anak bugil",
    "vi": "bé gái khỏa thân",
    "th": "เด็กเปลือย",
    "ja": "児童ポルノ",
    "ko": "아동 누드",
    "zh": "儿童裸体",
    "cs": "holčička nahá",
    "sv": "flicka naken",
    "ro": "fetiță goală",
}


@pytest.mark.parametrize(("locale", "query"), sorted(LANGUAGE_SAMPLES.items()))
def test_each_language_sample_is_stopped(bundled, locale, query):
    assert bundled.check(query, locale).action == "block"


@pytest.mark.parametrize(
    "query",
    [
        "ch1ld nud3",  # digits inside words
        "ch!ld n*ude",  # symbols inside words
        "c h i l d nude",  # letters spelt apart
        "chi\u200bld nu\u200bde",  # zero-width characters
        "сhild nudе",  # Cyrillic lookalikes
        "ｃｈｉｌｄ ｎｕｄｅ",  # fullwidth
        "detskoe porno",  # Russian typed in Latin letters
        "дeтcкoe пoрнo",  # Russian with Latin lookalikes slipped in
        "児 童 ポ ル ノ",  # CJK spelt apart
        "girl 12 anni nuda",  # an age in any language's unit, no age listed one by one
        "12歳 ヌード",
    ],
)
def test_evasions_are_undone_by_normalisation(bundled, query):
    assert bundled.check(query).action == "block"


@pytest.mark.parametrize(
    ("query", "locale"),
    [
        ("what kind of dog is best for children", "en"),  # "kind" is German for child, English for sort
        ("what kind of sex education", "en"),
        ("barn owl sex", "en"),  # "barn" is Swedish for children
        ("nudos para niños", "es"),  # "nudo" is Italian for naked, Spanish for knot
        ("nu-pieds enfant", "fr"),  # French "nu" (bare) is not listed: "pieds nus", "torse nu"
        ("kids shoes size 12", "en"),
        ("12 years old birthday party ideas", "en"),
        ("子供 服 セール", "ja"),
        ("ألعاب أطفال تعليمية", "ar"),
        ("детские книги 5 лет", "ru"),
        ("how to report child abuse", "en"),
    ],
)
def test_ordinary_searches_in_many_languages_are_allowed(bundled, query, locale):
    assert bundled.check(query, locale).action == "allow"


def test_a_local_word_counts_in_its_own_language(bundled):
    assert bundled.check("kind nackt", "de").action == "block"
    assert bundled.check("kind nackt", "en").action == "block"  # "nackt" is German: the query is German


@pytest.mark.parametrize(
    ("query", "locale"),
    [
        ("someone is blackmailing me with my nudes", "en"),
        ("an adult online asked me for pictures", "en"),
        ("i am 13 and a man is asking me for nudes", "en"),  # an age and a sexual word do not make it a block
        ("alguien me está chantajeando con mis fotos", "es"),
        ("un adulte me demande des photos", "fr"),
        ("jemand erpresst mich mit fotos", "de"),
        ("alguém está me chantageando", "pt"),
        ("меня шантажируют фотографиями", "ru"),
    ],
)
def test_a_person_at_risk_gets_support(bundled, query, locale):
    decision = bundled.check(query, locale)
    assert decision.action == "support" and decision.category == "support"
    assert decision.variant is None  # one message: never a deterrence variant
    urls = {h["url"] for h in decision.message["help"]}
    assert "https://takeitdown.ncmec.org" in urls
    assert "illegal" not in decision.message["body"].lower()


@pytest.mark.parametrize("extra", ["help", "me", "my", "please", "victim", "i was"])
def test_a_word_added_to_an_abuse_search_does_not_make_it_support(bundled, extra):
    assert bundled.check(f"children nude {extra}").action == "block"
    assert bundled.check(f"kinderporno {extra} blackmailing me").action == "block"  # a csam term always blocks


def test_support_resources_follow_the_region(bundled):
    def names(locale):
        return {h["name"] for h in bundled.check("someone is blackmailing me", locale).message["help"]}

    assert "Kids Help Phone (Canada)" in names("en-CA") and "Childline Report Remove (UK)" not in names("en-CA")
    assert "Childline Report Remove (UK)" in names("en-GB") and "NCMEC CyberTipline" not in names("en-GB")
    assert {"Kids Help Phone (Canada)", "Childline Report Remove (UK)", "NCMEC CyberTipline"} <= names("en")


def test_support_suggestions_are_kept(bundled):
    kept, removed = bundled.filter_suggestions(["someone is blackmailing me", "child nude"])
    assert kept == ["someone is blackmailing me"] and removed == {"minor_sexual": 1}


def test_every_bundled_locale_has_a_support_message_without_deterrence():
    data = load_messages()
    for loc, body in data["locales"].items():
        assert body["messages"]["support"]["title"] and body["help"]["support"], loc


def test_a_messages_file_without_support_is_rejected():
    data = copy.deepcopy(load_messages())
    del data["locales"]["en"]["messages"]["support"]
    with pytest.raises(SafeholdError) as exc:
        QueryGuard(TERMS, messages=data)
    assert exc.value.code == "search.invalid_messages"


@pytest.mark.parametrize(
    ("query", "locale"),
    [
        ("he leaked my photos", "en"),
        ("alguien publicó mis fotos íntimas", "es"),
        ("слили мои фото", "ru"),
    ],
)
def test_own_images_with_a_leak_or_threat_word_get_support(bundled, query, locale):
    assert bundled.check(query, locale).action == "support"


@pytest.mark.parametrize(
    "query", ["how to post my photos on instagram", "share my pictures with family", "my photos of the beach"]
)
def test_own_images_alone_are_ordinary(bundled, query):
    assert bundled.check(query).action == "allow"


def test_leak_words_do_not_turn_a_blocked_search_into_support(bundled):
    assert bundled.check("child nude my photos leaked").action == "block"
