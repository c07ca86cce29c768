"""normalize(): the evasive spellings a term list must survive, and the words it must leave alone."""

import random

import pytest

from safehold.errors import SafeholdError
from safehold.text.normalize import CONFUSABLES, EMOJI, MAX_TEXT, normalize, transliterate, unmasked


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello,   World!", "hello world"),
        ("  trailing and leading  ", "trailing and leading"),
        # homoglyphs: Cyrillic letters inside Latin words, all-lookalike words, Greek capitals
        ("p\u0430ypal", "paypal"),  # Cyrillic а
        ("\u0455\u0435x", "sex"),  # Cyrillic ѕ е, no Latin letter at all
        ("\u03a4\u039f\u03a1", "top"),  # Greek capitals ΤΟΡ
        # fullwidth, mathematical, circled, regional-indicator and small-capital letters
        ("\uff53\uff45\uff58", "sex"),
        ("\U0001d42c\U0001d41e\U0001d431", "sex"),
        ("\u24e2\u24d4\u24e7", "sex"),
        ("\U0001f1f8\U0001f1ea\U0001f1fd", "sex"),
        ("\u1d1b\u1d07\u1d07\u0274", "teen"),
        # invisible characters
        ("s\u200be\u200dx", "sex"),
        ("te\u00aden", "teen"),
        # diacritics, incl. decomposed and stacked marks
        ("Niño MÄDCHEN garçon", "nino madchen garcon"),
        ("nin\u0303o", "nino"),
        ("s\u0336e\u0336x\u0336", "sex"),
        ("Straße", "strasse"),
        ("\u01ff\u00f8 \u00c6", "oo ae"),  # ǿ ø Æ
        # leetspeak
        ("s3x p0rn n00dz", "sex porn noodz"),
        ("pr3t33n", "preteen"),
        ("r@ygold", "raygold"),
        ("a$$", "ass"),
        # spaced-out and punctuated letters
        ("s e x", "sex"),
        ("s.e.x", "sex"),
        ("c-p links", "cp links"),
        ("c h i l d", "child"),
        ("s - e - x", "sex"),
        ("S 3 X", "sex"),
        # repeated letters
        ("heyyyy sooo good", "hey so good"),
        ("1000 dollars", "1000 dollars"),
        # emoji with a known meaning
        ("send \U0001f4f8 on \U0001f47b", "send picture on snapchat"),
        ("\U0001f33d\ufe0f", "porn"),
        ("\U0001f4b0\U0001f3fd", "money"),
        # texting shorthand
        ("u r so cute, send pics pls", "you are so cute send pictures please"),
        ("ur pic", "your picture"),
    ],
)
def test_folds_evasive_spellings(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("i am 12yo", "i am 12yo"),  # a number at the edge of a word is an age, not leetspeak
        ("13f looking", "13f looking"),
        ("download the mp4", "download the mp4"),
        ("covid19 rules", "covid19 rules"),
        ("i a m", "iam"),  # a run of three joins unless every word in it can stand alone
        ("o y e", "o y e"),
        ("a i", "a i"),
        ("c u later", "c you later"),  # a run of two with a standalone word stays apart
        ("good book", "good book"),  # doubles stay
        ("email @handle and $cashtag", "email handle and cashtag"),
        ("\u041f\u0440\u0438\u0432\u0435\u0442", "\u043f\u0440\u0438\u0432\u0435\u0442"),  # real Russian word kept
        ("\u0928\u092e\u0938\u094d\u0924\u0947", "\u0928\u092e\u0938\u094d\u0924\u0947"),  # Devanagari marks kept
        ("sussex", "sussex"),
        ("", ""),
        ("!!! ???", ""),
    ],
)
def test_leaves_ordinary_text_alone(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "S.E.X with a k1d \U0001f47b",
        "xxx b",
        "s s s",
        "heyyy u r a s3xy one",
        "p\u0430ypal \u041f\u0440\u0438\u0432\u0435\u0442 \u0455\u0435x",
        "5$ and $$ and a$5b and 5$a",
        "l333 a444 b 3 3",
        "\u0130stanbul \u00df \ufb01ne",
        "o y e a u r",
        "_under_score__",
    ],
)
def test_idempotent(raw):
    once = normalize(raw)
    assert normalize(once) == once


def test_idempotent_on_random_mixed_script_text():
    rng = random.Random(7)
    alphabet = [*"abcdeiouyrsxz0134579@$ .-_!'", *CONFUSABLES, *EMOJI, *"ñäéßÆøǿΑΒ\u200b\u0301\ufe0fｓ𝐬ⓢक्ि"]
    for _ in range(5000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        once = normalize(raw)
        assert normalize(once) == once, raw


def test_output_shape():
    out = normalize("  Mixed\tCASE\n text—with ‘quotes’ & symbols #tag @user 🙂  ")
    assert out == out.strip() and "  " not in out
    assert all(c.isalnum() or c == " " for c in out)


def test_too_long():
    assert normalize("a" * MAX_TEXT) == "a"
    with pytest.raises(SafeholdError) as exc:
        normalize("a" * (MAX_TEXT + 1))
    assert exc.value.code == "text.too_long"


# ---------------------------------------------------------------- scripts, mixed scripts and the unmasked view


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("д\u0435т\u0441к\u043eе", "детское"),  # plain Cyrillic stays Cyrillic
        ("дeтcкoe", "детское"),  # Latin e, c, o slipped into a Cyrillic word
        ("д е т с к о е", "детское"),  # spelt apart, then resolved to Cyrillic
        ("12歳", "12歳"),  # digits next to CJK letters are an age, not leetspeak
        ("أطفالٌ", "اطفال"),  # Arabic: harakat dropped, hamza-carrying alef folded
    ],
)
def test_scripts_fold_to_one_form(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ch!ld", "child"), ("k1dd13", "kiddie"), ("p-o-r-t", "port"), ("4pple", "apple"), ("b|ue", "blue")],
)
def test_unmasked_reads_digits_and_symbols_anywhere_in_a_word(text, expected):
    assert unmasked(text) == expected


def test_unmasked_is_an_alternative_view_only():
    assert normalize("12yo mp4") == "12yo mp4"  # the canonical form keeps ages and product names
    assert unmasked("plain words") == normalize("plain words")


def test_transliterate_cyrillic_and_greek():
    assert transliterate("Щука жёлтая") == "shchuka zheltaya"
    assert transliterate("καλημέρα") == "kalimera"
