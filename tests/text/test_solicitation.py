"""Solicitation scoring: combinations of content, trading, channel and payment parts, and what gets extracted."""

from __future__ import annotations

import json

import pytest

from safehold.errors import SafeholdError
from safehold.text.normalize import MAX_TEXT
from safehold.text.solicitation import KINDS, SolicitationScorer, extract
from safehold.text.terms import TermList

# Synthetic list: "zqxcode" stands in for a coded CSAM term so no real one appears in the tests.
TERMS = TermList.from_csv(
    "term,category,severity\n"
    "zqxcode,csam,3\n"
    "child,minor,1\n"
    "kids,minor,1\n"
    "teen,minor_ambiguous,1\n"
    "nude,sexual,1\n"
    "trade,trading,1\n"
    "for sale,trading,1\n"
    "selling,trading,1\n"
    "telegram,offplatform,1\n"
    "cashapp,payment,1\n"
    "pay or i post,sextortion,2\n",
    name="test",
)


@pytest.fixture(scope="module")
def scorer() -> SolicitationScorer:
    return SolicitationScorer(TERMS)


def _types(result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for signal in result.signals:
        out.setdefault(signal["type"], []).append(signal["value"])
    return out


@pytest.mark.parametrize(
    ("text", "kind", "level"),
    [
        ("child for trade, contact me on telegram", "post", "high"),
        ("have kids to trade, join t.me/examplechannel", "message", "high"),
        ("zqxcode for trade", "post", "high"),
        ("zqxcode", "post", "high"),
        ("zqxcode", "comment", "high"),
        ("child nude, pay $exampletag", "post", "high"),
        ("pay or i post, send to $exampletag", "message", "high"),
        ("child nude", "post", "medium"),
        ("pay or i post", "message", "medium"),
        ("teen nude for sale", "post", "medium"),
        ("kids bikes for sale, call 555 123 4567", "listing", "medium"),
        ("Selling my old bike, good condition, call 555 123 4567", "listing", "low"),
        ("join our telegram for game news", "post", "low"),
        ("teen nude", "post", "low"),
        ("nice weather today", "post", "none"),
        ("read the article at https://example.org/news", "post", "none"),
    ],
)
def test_combinations(scorer, text, kind, level):
    result = scorer.score(text, kind)
    assert result.level == level, result.explanation
    assert (result.score == 0) == (level == "none")
    assert bool(result.explanation) == (level != "none")


def test_combination_outranks_its_parts(scorer):
    alone = scorer.score("zqxcode").score
    offered = scorer.score("zqxcode for trade").score
    assert offered > alone
    assert scorer.score("child nude t.me/somegroup").score > scorer.score("child nude").score


def test_listing_is_an_offer_by_nature(scorer):
    assert scorer.score("zqxcode", "listing").score > scorer.score("zqxcode", "post").score


def test_benign_sale_listing_extracts_phone(scorer):
    result = scorer.score("Selling my old bike, good condition, call 555 123 4567", "listing")
    assert result.score <= 0.1
    assert _types(result)["contact"] == ["555 123 4567"]
    assert result.categories == {"trading": 1, "contact": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("join t.me/examplegroup", ("invite_link", "t.me/examplegroup")),
        ("https://telegram.me/joinchat/AbCd", ("invite_link", "https://telegram.me/joinchat/AbCd")),
        ("server: discord.gg/Ab12Cd!", ("invite_link", "discord.gg/Ab12Cd")),
        ("https://discord.com/invite/xyz", ("invite_link", "https://discord.com/invite/xyz")),
        ("chat.whatsapp.com/InviteCode1", ("invite_link", "chat.whatsapp.com/InviteCode1")),
        ("https://signal.group/#CjQKIExample", ("invite_link", "https://signal.group/#CjQKIExample")),
        ("t[.]me/hidden", ("invite_link", "t.me/hidden")),
        ("t dot me/spaced", ("invite_link", "t.me/spaced")),
        ("kik: someone99", ("contact", "kik: someone99")),
        ("wickr me @someone99", ("contact", "wickr me @someone99")),
        ("session id 05" + "ab" * 32, ("contact", "05" + "ab" * 32)),
        ("tip $exampletag", ("payment_handle", "$exampletag")),
        ("paypal.me/someone", ("payment_handle", "paypal.me/someone")),
        ("venmo @some-user", ("payment_handle", "venmo @some-user")),
        ("btc 1BoatSLRTtRWKQbN9m2j4aNPzh9YxdvGZx", ("payment_handle", "1BoatSLRTtRWKQbN9m2j4aNPzh9YxdvGZx")),
        (
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            ("payment_handle", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
        ),
        (
            "eth 0x52908400098527886E0F7030069857D2E4169EE7",
            ("payment_handle", "0x52908400098527886E0F7030069857D2E4169EE7"),
        ),
        ("mail me at someone@example.com", ("contact", "someone@example.com")),
        ("call +1 (555) 123-4567", ("contact", "+1 (555) 123-4567")),
    ],
)
def test_channels_and_payment_handles_extracted(text, expected):
    signals, _ = extract(text)
    assert expected in [(s["type"], s["value"]) for s in signals]


@pytest.mark.parametrize("text", ["costs $5", "on 2024-01-15", "polka dot dress", "the signal is strong", "a.b"])
def test_ordinary_text_extracts_nothing(text):
    assert extract(text) == ([], [])


def test_every_url_listed_once_in_order(scorer):
    text = "see https://example.org/a, www.example.net and example.onion/x. again https://example.org/a"
    result = scorer.score(text)
    assert result.urls == ["https://example.org/a", "www.example.net", "example.onion/x"]
    assert [s["value"] for s in result.signals if s["type"] == "url"] == result.urls


def test_term_signals_and_categories(scorer):
    result = scorer.score("child nude child, pay $exampletag")
    terms = [(s["value"], s["category"]) for s in result.signals if s["type"] == "term"]
    assert terms == [("child", "minor"), ("nude", "sexual")]
    assert result.categories == {"minor": 1, "sexual": 1, "payment": 1}


def test_result_to_dict_is_json(scorer):
    data = json.loads(json.dumps(scorer.score("zqxcode t.me/x", "profile").to_dict()))
    assert data["level"] == "high" and data["urls"] == ["t.me/x"]


@pytest.mark.parametrize("kind", ["", "tweet", "POST", None])
def test_invalid_kind(scorer, kind):
    with pytest.raises(SafeholdError) as err:
        scorer.score("hello", kind)
    assert err.value.code == "solicitation.invalid_kind"


def test_all_kinds_accepted(scorer):
    assert all(scorer.score("hello", kind).level == "none" for kind in KINDS)


def test_too_long_and_non_string(scorer):
    with pytest.raises(SafeholdError) as err:
        scorer.score("a" * (MAX_TEXT + 1))
    assert err.value.code == "text.too_long"
    with pytest.raises(SafeholdError) as err:
        scorer.score(b"bytes")
    assert err.value.code == "text.invalid"


def test_starter_list_obvious_cases():
    scorer = SolicitationScorer()
    assert scorer.score("child nude pictures, join t.me/examplegroup").level == "high"
    assert scorer.score("Selling my old sofa, call 555 123 4567", "listing").level == "low"
    assert scorer.score("lovely walk in the park today").level == "none"
