"""Versioned term lists (CSV in and out) and a fast whole-word matcher over normalised text.

A list is a CSV file an operator can read and edit: a header row ``term,category,severity,language,source``
(``severity``, ``language`` and ``source`` are optional columns), one term per row, and ``#`` comment lines.
Comment lines of the form ``# source: <key> = <citation>`` define the citations that rows name in ``source``, so
every term can be traced to where it was published. Rows are not allowed to contain line breaks.

:class:`Matcher` compiles ``normalize(term)`` for every term into one Aho-Corasick automaton (pyahocorasick), so
finding every term in a text costs one pass over the text whatever the size of the list. A hit counts only when
it is a whole word or phrase of the normalised text (a space or an end on both sides): "sex" does not match
"sussex". A multi-word term of six or more letters also matches its squashed form ("link in bio" matches
"linkinbio", as in hashtags), and a term written with an apostrophe also matches its form without one
("don't tell" matches "dont tell": chat drops apostrophes; the text's own "don't" normalises to "don t", which the
term's normal form matches). Words split into single letters are rejoined by :func:`normalize` ("c h i l d").
A term in a script written without spaces (:data:`~safehold.text.normalize.UNSPACED`: CJK, Thai,
Arabic with its clitics…) needs no space on the side where it starts or ends with such a character, since
there is none to find (a Japanese term inside a longer Japanese query, an Arabic noun with its article). A term
with Cyrillic or Greek letters also matches its romanisation (:func:`~safehold.text.normalize.transliterate`),
as people type those languages in Latin letters.
A term written with a trailing ``*`` is a stem: it also matches the words it starts ("minderjährig*" matches
"minderjährigen"), for languages that inflect (at least ``STEM_MIN`` characters before the ``*``).
Not caught: terms glued to other words ("hotchild"), misspellings not in the list, and words split into
multi-letter chunks.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import ahocorasick

from safehold.errors import NotFound, SafeholdError
from safehold.text.normalize import UNSPACED, normalize, transliterate

#: A category ending in this is a context word that is an ordinary word in another language: a detector counts
#: it only in its own language's context (see :mod:`safehold.text.search`).
LOCAL = ".local"
AGE_UNIT = "age_unit"
#: Categories only the search guard reads: an age unit is nothing without the number before it, and a victim's
#: phrase asks for help rather than offering anything (the solicitation scorer skips both, and ``.local`` words).
SEARCH_ONLY = frozenset({AGE_UNIT, "victim", "victim.images", "victim.harm"})  # see safehold.text.support
#: Categories a :class:`Matcher` keeps in ``terms`` but does not look for as words: an age unit ("let", "ans",
#: "yo") is an ordinary word alone, and the guard reads it with the number before it, in one regex.
NOT_WORDS = frozenset({AGE_UNIT})
SEVERITIES = (1, 2, 3)  # 1 = context only, 2 = warn, 3 = block / strong signal
MAX_TERMS = 1_000_000
COLUMNS = ("term", "category", "severity", "language", "source")

_CATEGORY = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$")
_LANGUAGE = re.compile(r"^(?:[a-z]{2,3}|und)$")
_SOURCE_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_SOURCE_LINE = re.compile(r"^#\s*source\s*:\s*(?P<key>[^=\s]+)\s*=\s*(?P<citation>.+?)\s*$", re.IGNORECASE)
_VERSION_LINE = re.compile(r"^#\s*version\s*:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_LIST_NAME = re.compile(r"^[a-z0-9_]+$")
_SQUASH_MIN = 6
STEM_MIN = 4
_APOSTROPHE = re.compile(r"(?<=[^\W\d_])['\u2019\u02bc](?=[^\W\d_])")
_CYRILLIC_GREEK = re.compile("[\u0370-\u03ff\u0400-\u04ff]")


@dataclass(frozen=True)
class Term:
    term: str  # as written in the list; normalised at match time
    category: str  # slug, e.g. "csam", "minor", "grooming.secrecy"
    severity: int = 2
    language: str = "und"  # BCP-47 primary tag; "und" = any language
    source: str = ""  # citation key defined in the list file's header


def _invalid(message: str, line: int | None = None) -> SafeholdError:
    where = f"line {line}: " if line is not None else ""
    return SafeholdError("terms.invalid_csv", f"Invalid term list: {where}{message}", detail={"line": line})


def _dedupe(terms: Iterable[Term]) -> tuple[Term, ...]:
    """One Term per (normalised term, stem or not, category, language); a duplicate keeps the highest severity."""
    kept: dict[tuple[str, bool, str, str], Term] = {}
    for t in terms:
        key = (normalize(t.term), t.term.rstrip().endswith("*"), t.category, t.language)
        old = kept.get(key)
        if old is None or t.severity > old.severity:
            kept[key] = t if old is None else Term(old.term, t.category, t.severity, t.language, old.source or t.source)
    return tuple(kept.values())


@dataclass(frozen=True)
class TermList:
    name: str
    version: int
    terms: tuple[Term, ...]
    sources: dict[str, str] = field(default_factory=dict)  # citation key -> citation

    @classmethod
    def from_csv(cls, data: str | bytes, *, name: str, version: int = 1) -> TermList:
        """Parse a list; any bad row raises ``terms.invalid_csv`` naming the line, so nothing is silently dropped."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise _invalid(f"the file is not UTF-8 (byte {exc.start})") from None
        data = data.removeprefix("\ufeff")
        sources: dict[str, str] = {}
        header: list[str] | None = None
        rows: list[tuple[int, Term]] = []
        for lineno, line in enumerate(data.splitlines(), 1):
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                m = _SOURCE_LINE.match(stripped)
                if m:
                    sources[m["key"]] = m["citation"]
                elif re.match(r"^#\s*source\s*:", stripped, re.IGNORECASE):
                    raise _invalid("a source line must read '# source: <key> = <citation>'", lineno)
                continue
            try:
                fields = [f.strip() for f in next(csv.reader([line], strict=True))]
            except csv.Error as exc:
                raise _invalid(str(exc), lineno) from None
            if header is None:
                header = _parse_header(fields, lineno)
                continue
            rows.append((lineno, _parse_row(header, fields, lineno)))
            if len(rows) > MAX_TERMS:
                raise SafeholdError(
                    "terms.invalid_csv", f"Invalid term list: more than {MAX_TERMS:,} terms", detail={"line": lineno}
                )
        if header is None:
            raise _invalid("no header row (expected 'term,category,...')")
        for lineno, term in rows:
            if term.source and term.source not in sources:
                raise _invalid(
                    f"source {term.source!r} is not defined; add the line "
                    f"'# source: {term.source} = <where these terms come from>' above the header row",
                    lineno,
                )
        return cls(name=name, version=version, terms=_dedupe(t for _, t in rows), sources=sources)

    def to_csv(self) -> str:
        """Write the list so that ``from_csv`` reads back an equal list (give it the same name and version)."""
        out = io.StringIO()
        out.write(f"# {self.name} term list\n# version: {self.version}\n")
        for key, citation in self.sources.items():
            out.write(f"# source: {key} = {citation}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        for t in self.terms:
            row = (t.term, t.category, t.severity, t.language, t.source)
            (quoted if t.term.startswith("#") else writer).writerow(row)
        return out.getvalue()

    def categories(self) -> set[str]:
        return {t.category for t in self.terms}

    def merged(self, *others: TermList, name: str | None = None) -> TermList:
        """One list from several (e.g. the starter list plus an operator's own); duplicates keep the highest
        severity, the version is the highest of the inputs, and a citation key must mean the same everywhere."""
        sources = dict(self.sources)
        for other in others:
            for key, citation in other.sources.items():
                if sources.setdefault(key, citation) != citation:
                    raise SafeholdError(
                        "terms.source_conflict",
                        f"Source key {key!r} is cited differently in {self.name!r} and {other.name!r}.",
                        detail={"key": key},
                    )
        lists = (self, *others)
        return TermList(
            name=name or self.name,
            version=max(tl.version for tl in lists),
            terms=_dedupe(t for tl in lists for t in tl.terms),
            sources=sources,
        )


def _parse_header(fields: list[str], lineno: int) -> list[str]:
    names = [f.lower() for f in fields]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise _invalid(f"unknown column(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(COLUMNS)}", lineno)
    if len(set(names)) != len(names):
        raise _invalid("a column is named twice in the header", lineno)
    if "term" not in names or "category" not in names:
        raise _invalid("the header must name the 'term' and 'category' columns", lineno)
    return names


def _parse_row(header: list[str], fields: list[str], lineno: int) -> Term:
    if len(fields) > len(header):
        raise _invalid(f"{len(fields)} fields but the header has {len(header)} columns", lineno)
    values = dict(zip(header, fields, strict=False))  # short rows leave optional columns empty
    term = values.get("term", "")
    if not normalize(term):
        raise _invalid(f"empty term {term!r} (nothing left after normalisation)", lineno)
    if term.endswith("*") and len(normalize(term)) < STEM_MIN:
        raise _invalid(f"stem {term!r} is too short: at least {STEM_MIN} characters before the '*'", lineno)
    category = values.get("category", "")
    if not _CATEGORY.match(category):
        raise _invalid(f"category {category!r} must be a lower-case slug like 'minor' or 'grooming.secrecy'", lineno)
    raw_severity = values.get("severity") or "2"
    if raw_severity not in {str(s) for s in SEVERITIES}:
        raise _invalid(f"severity {raw_severity!r} must be one of {', '.join(map(str, SEVERITIES))}", lineno)
    language = (values.get("language") or "und").lower()
    if not _LANGUAGE.match(language):
        raise _invalid(f"language {language!r} must be a BCP-47 primary tag like 'en' or 'und'", lineno)
    source = values.get("source", "")
    if source and not _SOURCE_KEY.match(source):
        raise _invalid(f"source key {source!r} may only use letters, digits, '_', '.', '-'", lineno)
    return Term(term=term, category=category, severity=int(raw_severity), language=language, source=source)


@lru_cache(maxsize=16)
def load_list(name: str) -> TermList:
    """A list bundled in ``safehold/text/lists/<name>.csv`` (cached: a TermList is immutable)."""
    if not _LIST_NAME.match(name):
        raise NotFound("terms.unknown_list", f"No bundled term list {name!r}.")
    path = resources.files("safehold.text").joinpath("lists", f"{name}.csv")
    if not path.is_file():
        raise NotFound("terms.unknown_list", f"No bundled term list {name!r}.")
    text = path.read_text(encoding="utf-8")
    m = _VERSION_LINE.search(text)
    return TermList.from_csv(text, name=name, version=int(m.group(1)) if m else 1)


def load_starter() -> TermList:
    return load_list("starter")


@dataclass(frozen=True)
class Hit:
    term: Term
    start: int  # offsets in the normalised text; text[start:end] is the matched word or phrase
    end: int


class Matcher:
    """All whole-word occurrences of a set of terms, in one Aho-Corasick pass over the normalised text."""

    def __init__(self, terms: Iterable[Term]):
        keyed: dict[str, list[Term]] = {}
        count = 0
        self.terms: tuple[Term, ...] = tuple(terms)
        for t in self.terms:
            if t.category in NOT_WORDS:
                continue
            key = normalize(t.term)
            if not key:
                continue  # from_csv rejects these; a programmatic empty term can never match
            count += 1
            variants = {key}
            squashed = key.replace(" ", "")
            if squashed != key and len(squashed) >= _SQUASH_MIN:
                variants.add(squashed)
            if _APOSTROPHE.search(t.term):  # "don't" is also typed "dont", "i'm" "im"
                variants.add(normalize(_APOSTROPHE.sub("", t.term)))
            if _CYRILLIC_GREEK.search(t.term):
                variants.add(normalize(transliterate(t.term)))
            stem = t.term.rstrip().endswith("*")
            for variant in variants:
                keyed.setdefault(variant, ([], []))[stem].append(t)
        self._count = count
        self._automaton = ahocorasick.Automaton()
        for key, (words, stems) in keyed.items():
            free = (bool(UNSPACED.match(key[0])), bool(UNSPACED.match(key[-1])))
            self._automaton.add_word(key, (len(key), (*words, *stems), tuple(stems), free))
        if keyed:
            self._automaton.make_automaton()

    def __len__(self) -> int:
        return self._count

    def find(self, text: str, *, normalized: bool = False) -> list[Hit]:
        """Every whole-word hit, ordered by position. Pass ``normalized=True`` if ``text`` is already normalised."""
        if not self._count:
            return []
        s = text if normalized else normalize(text)
        n = len(s)
        hits: list[Hit] = []
        for last, (length, terms, stems, (free_start, free_end)) in self._automaton.iter(s):
            start = last - length + 1
            if not (free_start or start == 0 or s[start - 1] == " "):
                continue
            whole = free_end or last + 1 == n or s[last + 1] == " "
            for t in terms if whole else stems:  # a stem also matches the start of a longer word
                hits.append(Hit(t, start, last + 1))
        if len(hits) > 1:
            hits.sort(key=lambda h: (h.start, h.end))
        return hits

    def categories(self, text: str, *, normalized: bool = False) -> dict[str, int]:
        """Category -> highest severity found in ``text``."""
        found: dict[str, int] = {}
        for hit in self.find(text, normalized=normalized):
            t = hit.term
            if t.severity > found.get(t.category, 0):
                found[t.category] = t.severity
        return found
