"""Term lists (CSV in/out, validation, merging) and the whole-word matcher."""

import pytest

from safehold.errors import SafeholdError
from safehold.text.terms import SEVERITIES, Hit, Matcher, Term, TermList, load_list, load_starter

CSV = """# demo list
# source: demo = Example, A. (2020). A demo citation, with a comma.
term,category,severity,language,source
ice cream,food,1,en,demo
helado,food,1,es,demo
"quoted, term",misc,3,und,
#hashtag,misc,2,en,
"""


def test_from_csv_parses_rows_and_sources():
    tl = TermList.from_csv(CSV, name="demo", version=4)
    assert tl.name == "demo" and tl.version == 4
    assert tl.sources == {"demo": "Example, A. (2020). A demo citation, with a comma."}
    assert tl.terms[0] == Term("ice cream", "food", 1, "en", "demo")
    assert Term("quoted, term", "misc", 3, "und", "") in tl.terms
    assert len(tl.terms) == 3  # "#hashtag" line is a comment
    assert tl.categories() == {"food", "misc"}


def test_optional_columns_default():
    tl = TermList.from_csv(b"\xef\xbb\xbfterm,category\nhello,greeting\n", name="x")
    assert tl.terms == (Term("hello", "greeting", 2, "und", ""),)


def test_csv_round_trip():
    tl = TermList(
        name="rt",
        version=7,
        terms=(
            Term("#starts with hash", "misc", 1, "en", "k"),
            Term('has "quotes", commas', "misc", 3, "und", ""),
            Term("niño", "minor", 1, "es", "k"),
        ),
        sources={"k": "Key, K. (2021). Title = with equals."},
    )
    again = TermList.from_csv(tl.to_csv(), name="rt", version=7)
    assert again == tl


def test_starter_round_trips():
    tl = load_starter()
    assert TermList.from_csv(tl.to_csv(), name=tl.name, version=tl.version) == tl


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", None, "no header"),
        ("term,colour\nx,y\n", 1, "unknown column"),
        ("term,term,category\n", 1, "named twice"),
        ("term,severity\nx,1\n", 1, "'term' and 'category'"),
        ("term,category\nok,fine\n,empty\n", 3, "empty term"),
        ("term,category\nok,fine\n!!!,punct\n", 3, "empty term"),
        ("# c\n\nterm,category\nx,Bad Slug\n", 4, "category"),
        ("term,category,severity\nx,a,5\n", 2, "severity"),
        ("term,category,severity\nx,a,high\n", 2, "severity"),
        ("term,category,language\nx,a,english\n", 2, "language"),
        ("term,category\nx,a,extra\n", 2, "fields"),
        ("term,category,source\nx,a,nokey\n", 2, "not defined"),
        ("# source: missing equals\nterm,category\n", 1, "source line"),
        ('term,category\n"unterminated,a\n', 2, "line 2"),
    ],
)
def test_invalid_csv_names_the_line(text, line, fragment):
    with pytest.raises(SafeholdError) as exc:
        TermList.from_csv(text, name="bad")
    assert exc.value.code == "terms.invalid_csv"
    assert fragment in exc.value.message
    assert exc.value.detail["line"] == line
    if line is not None:
        assert f"line {line}:" in exc.value.message


def test_invalid_utf8():
    with pytest.raises(SafeholdError) as exc:
        TermList.from_csv(b"term,category\n\xff\xfe,x\n", name="bad")
    assert exc.value.code == "terms.invalid_csv"


def test_duplicates_keep_highest_severity():
    tl = TermList.from_csv("term,category,severity\nS3X,a,1\nsex,a,3\nsex,b,1\n", name="d")
    assert [(t.term, t.category, t.severity) for t in tl.terms] == [("S3X", "a", 3), ("sex", "b", 1)]


def test_merged():
    a = TermList("a", 1, (Term("x", "c", 1),), {"k": "K"})
    b = TermList("b", 3, (Term("x", "c", 3), Term("y", "c")), {"j": "J"})
    m = a.merged(b, name="ab")
    assert (m.name, m.version) == ("ab", 3)
    assert m.terms == (Term("x", "c", 3), Term("y", "c"))
    assert m.sources == {"k": "K", "j": "J"}
    with pytest.raises(SafeholdError) as exc:
        a.merged(TermList("c", 1, (), {"k": "other"}))
    assert exc.value.code == "terms.source_conflict"


def test_load_list_errors():
    for name in ("nope", "../etc/passwd"):
        with pytest.raises(SafeholdError) as exc:
            load_list(name)
        assert exc.value.code == "terms.unknown_list" and exc.value.status == 404


def test_starter_list_shape():
    tl = load_starter()
    assert load_list("starter") is tl
    assert {"csam", "minor", "minor_ambiguous", "sexual", "trading", "offplatform", "payment", "sextortion"} <= (
        tl.categories()
    )
    assert {t.language for t in tl.terms} >= {"en", "es", "pt", "fr", "de"}
    assert all(t.severity in SEVERITIES and t.source in tl.sources for t in tl.terms)
    assert {t.severity for t in tl.terms if t.category == "csam"} == {3}
    assert {t.severity for t in tl.terms if t.category in ("minor", "sexual", "trading")} == {1}


def _matcher(*rows):
    return Matcher(Term(term, cat, sev) for term, cat, sev in rows)


def test_find_whole_words_only():
    m = _matcher(("sex", "sexual", 1), ("kid", "minor", 1))
    assert m.find("Sussex kidney essex") == []
    hits = m.find("sex, kid!")
    assert [(h.term.term, h.start, h.end) for h in hits] == [("sex", 0, 3), ("kid", 4, 7)]


def test_find_offsets_refer_to_normalised_text():
    m = _matcher(("gift card", "payment", 1))
    text = "Pay with a GIFT   CARD now"
    norm = "pay with a gift card now"
    (hit,) = m.find(text)
    assert norm[hit.start : hit.end] == "gift card"
    assert m.find(norm, normalized=True) == [hit]


def test_find_evasive_spellings():
    m = _matcher(("child", "minor", 1), ("telegram", "offplatform", 1), ("pthc", "csam", 3), ("snapchat", "o", 1))
    for text in ("c h i l d", "CH1LD", "\u0441hild", "\uff43\uff48\uff49\uff4c\uff44", "chiiild", "ch\u200bild"):
        assert [h.term.term for h in m.find(text)] == ["child"], text
    assert [h.term.term for h in m.find("t.e.l.e.g.r.a.m and p-t-h-c")] == ["telegram", "pthc"]
    assert [h.term.term for h in m.find("add me \U0001f47b")] == ["snapchat"]


def test_overlapping_and_shared_keys():
    m = Matcher([Term("child", "minor", 1), Term("child porn", "csam", 3), Term("Child", "other", 2)])
    assert len(m) == 3
    hits = m.find("child porn")
    assert [(h.term.category, h.start, h.end) for h in hits] == [("minor", 0, 5), ("other", 0, 5), ("csam", 0, 10)]
    assert m.categories("child porn") == {"minor": 1, "other": 2, "csam": 3}


def test_squashed_multiword_terms():
    m = _matcher(("link in bio", "trading", 1), ("dm for", "trading", 1))
    assert [h.term.term for h in m.find("#linkinbio")] == ["link in bio"]
    assert m.find("dmfor") == []  # squashed forms shorter than six letters are too likely to be other words


def test_multi_language_terms():
    tl = load_starter()
    m = Matcher(tl.terms)
    cases = {
        "pornografía infantil": "csam",
        "PORNOGRAFIA INFANTIL": "csam",
        "pédopornographie": "csam",
        "Kinderpornografie": "csam",
        "tengo 13 años": "minor",
        "j'ai 13 ans": "minor",
        "ich bin 13 jahre alt": "minor",
        "Mädchen": "minor",
        "menina": "minor",
        "vou vazar suas fotos": "sextortion",
        "paga o publico": "sextortion",
        "carte cadeau": "payment",
    }
    for text, category in cases.items():
        assert category in m.categories(text), text


def test_starter_on_benign_text():
    m = Matcher(load_starter().terms)
    for text in ("what time is the football match tonight", "recipe for chocolate cake", "essex weather"):
        assert m.categories(text) == {}, text


def test_empty_matcher_and_empty_terms():
    assert Matcher([]).find("anything") == []
    m = Matcher([Term("!!!", "x"), Term("ok", "y")])
    assert len(m) == 1
    assert m.find("ok") == [Hit(Term("ok", "y"), 0, 2)]


def test_a_term_with_an_apostrophe_also_matches_chat_spelling_without_it():
    m = Matcher([Term("don't tell your parents", "grooming.exclusivity", 3), Term("l'enfant", "minor", 1, "fr")])
    for text in ("dont tell your parents", "don't tell your parents", "don\u2019t tell your parents"):
        assert [h.term.term for h in m.find(text)] == ["don't tell your parents"], text
    assert [h.term.term for h in m.find("je vois lenfant")] == ["l'enfant"]
    assert m.find("do not tell") == [] and len(m) == 2


def test_a_stem_matches_the_words_it_starts_and_only_those():
    tl = TermList.from_csv("term,category\nminderjährig*,minor\nkid,minor\n", name="stems")
    m = Matcher(tl.terms)
    found = [(h.term.term, h.start) for h in m.find("minderjährigen kids kid minderjährig")]
    assert found == [("minderjährig*", 0), ("kid", 20), ("minderjährig*", 24)]  # "kids" is not "kid"
    assert not m.find("nichtminderjährig")  # a stem still starts a word


def test_a_stem_is_at_least_four_characters():
    with pytest.raises(SafeholdError) as exc:
        TermList.from_csv("term,category\nab*,minor\n", name="short")
    assert exc.value.code == "terms.invalid_csv"
