import pytest

from safehold.text.grooming.ages import ages_in


@pytest.mark.parametrize(
    ("text", "ages"),
    [
        ("I'm 13", [13]),
        ("im 13 yo", [13]),
        ("I’m 14 and you?", [14]),
        ("13 years old lol", [13]),
        ("asl? 13/f", [13]),
        ("15f here", [15]),
        ("tengo 13 años", [13]),
        ("tengo 12", [12]),
        ("tenho 13 anos", [13]),
        ("j'ai 13 ans", [13]),
        ("jai 12 ans", [12]),
        ("ich bin 13", [13]),
        ("ich bin 13 jahre alt", [13]),
        ("im 13... my brother is 17 years old", [13, 17]),
    ],
)
def test_declared_ages_in_five_languages(text, ages):
    assert ages_in(text) == ages


@pytest.mark.parametrize(
    "text",
    [
        "i'm 5 minutes away",
        "i'm 6 foot tall",
        "ich bin 10 km entfernt",
        "see you at 13:30",
        "tengo 13 amigos",
        "hace 13 años",
        "i have 13 apples",
        "born in 2010",
        "13 m away",
        "no digits here at all",
        "i'm 3",  # below 5: not an age anyone declares in chat
    ],
)
def test_not_ages(text):
    assert ages_in(text) == []
