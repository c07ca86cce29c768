"""Self-declared ages in chat text ("I'm 13", "13 yo", "tengo 13 años", "j'ai 13 ans", "ich bin 13").

An age gap between the participants is one of the strongest context signals in the grooming literature: a
conversation that would be ordinary between two adults is not ordinary between an adult and a 13-year-old. Children
state their age early and often in chat (O'Connell 2003; Winters, Kaylor & Jeglic 2017), so a small set of patterns
catches most declarations.

Patterns work on the raw, lower-cased text, not on :func:`safehold.text.normalize` output: normalising applies
leetspeak to words that mix digits and letters ("13f" would become "ief"). Covered shapes:

- en: "i'm 13", "im 13", "i am 13", "13 yo", "13yo", "13 y/o", "13 years old", "13 yrs old", "13f", "13/m"
  (not "13 m": metres), "age 13", "aged 13"
- es: "tengo 13 años", "tengo 13" (not "tengo 13 amigos"), "13 años de edad", "cumplí 13"
- pt: "tenho 13 anos", "13 anos de idade", "fiz 13 anos"
- fr: "j'ai 13 ans", "jai 13 ans"; de: "ich bin 13", "13 jahre alt"

"i'm N" and "ich bin N" are skipped when a unit follows ("i'm 5 minutes away", "ich bin 10 km entfernt").
Not covered: ages in words ("thirteen"), ranges, and whose age it is ("my sister is 13 years old" counts as a
declaration). Only 5..99 are returned.
"""

from __future__ import annotations

import re

_UNITS = (
    r"min|mins|minute|minutes|minuten|minutos|hour|hours|hr|hrs|h|sec|secs|stunden?|horas?|heures?|day|days|tage?|"
    r"dias?|jours?|week|weeks|month|months|km|mi|mile|miles|m|cm|ft|foot|feet|kg|lb|lbs|%|am|pm|uhr|o'clock|"
    r"th|st|nd|rd|euro|euros|dollar|dollars|bucks|k|times|mal|points|pts|level|lvl|x|"
    r"'|:|\.\d|,\d"
)
# Each alternative captures the age in a group named "a<n>" (named groups must be unique in one pattern).
_PATTERNS = (
    rf"\b(?:i'?m|i am|ich bin)\s+(?P<a1>\d{{1,2}})\b(?!\s*(?:{_UNITS})(?![a-z]))",
    r"\b(?P<a2>\d{1,2})\s*(?:yo|y/o|y\.o\.?|yrs? old|years? old|jahre alt)\b",
    r"\b(?P<a3>\d{1,2})/?[fm]\b(?!\s*(?:'|:|\.\d))",
    r"\b(?:age|aged|edad|idade|âge|alter)\s*:?\s*(?P<a4>\d{1,2})\b",
    r"\b(?:tengo|cumpl[ií])\s+(?P<a5>\d{1,2})(?:\s+a[ñn]os\b|(?!\s*[a-zñ\d]))",
    r"\b(?:tenho|fiz)\s+(?P<a6>\d{1,2})\s+anos\b",
    r"\b(?P<a7>\d{1,2})\s+(?:a[ñn]os de edad|anos de idade)\b",
    r"\bj\s?'?\s?ai\s+(?P<a8>\d{1,2})\s+ans\b",
)
_AGE = re.compile("|".join(_PATTERNS))
_DIGIT = re.compile(r"\d")
_QUOTES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\u2018": "'"})


def ages_in(text: str) -> list[int]:
    """Ages (5..99) the text declares, in order of appearance; [] when there are none."""
    if not _DIGIT.search(text):
        return []  # the common case: most chat lines carry no digit at all
    out: list[int] = []
    for m in _AGE.finditer(text.lower().translate(_QUOTES)):
        value = int(next(v for v in m.groups() if v is not None))
        if 5 <= value <= 99:
            out.append(value)
    return out
