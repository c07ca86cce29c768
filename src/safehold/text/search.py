"""Keep abuse out of search and autocomplete (Voluntary Principle 6): a query guard and a suggestion filter.

A search box is where someone first *looks* for abuse material, so it is the cheapest place to interrupt them. The
guard normalises the query once, runs the term matcher, and applies a small rule table on the *categories* hit:

=============================  ==========  ============  ==========================================================
categories in the query        action      message       why
=============================  ==========  ============  ==========================================================
any ``csam`` term              block       block         the term's only common use is seeking abuse material
a ``victim`` phrase            support     support       a person at risk asking for help: a child asked for
                                                         images, a sextortion victim, someone whose images were
                                                         shared, a child disclosing abuse. Help resources for
                                                         *them*, never a deterrence message; it wins over every
                                                         row below, but not over a ``csam`` term, so an
                                                         abuse-seeking query is not turned into support by adding
                                                         a phrase (victim phrases are first-person phrases, never
                                                         one word such as "help" or "me")
``minor`` + ``sexual``         block       block         a child word with a sexual word is a request for CSAM
``victim.images`` +            support     support       "my nudes/photos" with a leak or threat word ("he posted
``victim.harm``                                          my pictures", "slili moi foto"): a person whose images
                                                         were shared or are threatened. Below the block rows, so
                                                         adding such words to a blocked search changes nothing
``minor_ambiguous`` + sexual   warn        warn          "teen"/"young" + sexual is often legal adult content
                                                         labelled to look young: warn, do not block (Prichard et
                                                         al. 2022 tested warnings on exactly these searches)
``sextortion``                 warn        sextortion    the searcher may be a victim as well as an offender, so
                                                         the message leads to victim support (NCMEC Take It Down)
anything else                  allow       none
=============================  ==========  ============  ==========================================================

The first matching row wins. Single context words (``minor``, ``sexual``, ``trading`` …) never act alone: "kids
shoes" and "sex education" must stay searchable. Matching uses every language's terms whatever the locale, because
people search in mixed languages; the locale picks the message, and decides for the few context words that are
ordinary words in another language (category ``<name>.local``, e.g. German "kind", Swedish "barn"): such a word
counts only when the locale is its language or another word of the query is in its language.

What the guard sees of a query, so that evasions are undone by normalisation rather than listed as spellings:

- the canonical form (:func:`~safehold.text.normalize.normalize`: case, accents, fullwidth and styled letters,
  homoglyphs, mixed scripts, zero-width characters, separators, leetspeak between letters, letters spelled apart);
- the unmasked form (:func:`~safehold.text.normalize.unmasked`: digits and symbols anywhere in a word, "ch!ld",
  "4nal"), as a second view whose hits are added to the first;
- ages: a number under 18 before an ``age_unit`` word of any language ("12 anni", "12歳", "14yo") is a ``minor``
  cue, so no age is listed one by one;
- terms in scripts without spaces (CJK, Thai, Arabic with its clitics) are found inside words, and Cyrillic and
  Greek terms also in Latin transliteration (:class:`~safehold.text.terms.Matcher`).

Messages come from ``data/search_messages.json`` (sources cited inside). Each blocked/warned query gets one message
*variant* (``deterrence``: illegal + traceable + help; ``help``: help first) so a platform can compare them, as the
published evaluations did. A caller ``bucket`` (e.g. a hash of the session id) keeps the same variant for the same
person; without one the variant is drawn at random by weight. No cache: every query is matched afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from safehold.errors import SafeholdError
from safehold.text.normalize import UNSPACED, normalize, unmasked
from safehold.text.support import VICTIM, VICTIM_HARM, VICTIM_IMAGES
from safehold.text.terms import AGE_UNIT, LOCAL, Hit, Matcher, TermList, load_starter

ACTIONS = ("allow", "support", "warn", "block")
MESSAGE_KINDS = ("block", "warn", "sextortion")  # one message per variant
SUPPORT = "support"  # the action, its message (one, not per variant: never a deterrence text) and its help set
HELP_SETS = ("prevention", "victim", SUPPORT)
_SEVERITY = {"allow": 0, "support": 1, "warn": 2, "block": 3}
ADULT = 18
_MASKABLE = re.compile(r"[^\s\w]|\d")  # without one of these the unmasked view is the canonical form


@dataclass(frozen=True)
class _Rule:
    category: str  # the decision's category, and the key suggestion removals are counted under
    needs: frozenset[str]  # term categories that must all be present
    action: str
    message: str  # key into the locale's messages
    help: str  # which help set goes with the message


RULES = (
    _Rule("csam", frozenset({"csam"}), "block", "block", "prevention"),
    _Rule(SUPPORT, frozenset({VICTIM}), SUPPORT, SUPPORT, SUPPORT),
    _Rule("minor_sexual", frozenset({"minor", "sexual"}), "block", "block", "prevention"),
    _Rule(SUPPORT, frozenset({VICTIM_IMAGES, VICTIM_HARM}), SUPPORT, SUPPORT, SUPPORT),
    _Rule("minor_ambiguous_sexual", frozenset({"minor_ambiguous", "sexual"}), "warn", "warn", "prevention"),
    _Rule("sextortion", frozenset({"sextortion"}), "warn", "sextortion", "victim"),
)


@dataclass(slots=True)
class SearchDecision:
    action: str
    category: str | None
    severity: int
    locale: str
    variant: str | None
    message: dict | None

    def to_dict(self) -> dict:
        """A plain dict, built by hand: ``dataclasses.asdict`` deep-copies and costs more than the check. The
        message is already a fresh dict per decision (see ``QueryGuard._message``)."""
        return {
            "action": self.action,
            "category": self.category,
            "severity": self.severity,
            "locale": self.locale,
            "variant": self.variant,
            "message": self.message,
        }


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("search.invalid_messages", message)


def require_text(value, where: str, invalid=_invalid) -> str:
    """``value`` if it is a non-empty string, else ``invalid(message)`` raised (each catalogue has its code)."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{where} must be a non-empty string")
    return value


def validate_help_entry(entry, where: str, sources: dict, invalid=_invalid) -> None:
    """One help resource (name, url, description; optional phone, regions, source): the shape shared by the
    search messages and the safety prompts (:mod:`safehold.safety.prompts`)."""
    if not isinstance(entry, dict):
        raise invalid(f"{where} must be an object")
    for key in ("name", "url", "description"):
        require_text(entry.get(key), f"{where}.{key}", invalid)
    if "phone" in entry:
        require_text(entry["phone"], f"{where}.phone", invalid)
    regions = entry.get("regions")
    if regions is not None and (
        not isinstance(regions, list) or not regions or not all(isinstance(r, str) and r for r in regions)
    ):
        raise invalid(f"{where}.regions must be a non-empty list of region codes such as 'GB'")
    if entry.get("source") is not None and entry["source"] not in sources:
        raise invalid(f"{where}.source {entry['source']!r} is not defined in 'sources'")


def validate_messages(data) -> dict:
    """Check the whole shape up front, so a bad operator file fails at load, not on the first blocked query."""
    if not isinstance(data, dict):
        raise _invalid("messages must be a JSON object")
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise _invalid("'sources' must be an object")
    variants = data.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise _invalid("'variants' must be a non-empty object of name -> weight")
    _check_weights(variants, _invalid)
    locales = data.get("locales")
    if not isinstance(locales, dict) or not locales:
        raise _invalid("'locales' must be a non-empty object")
    default = data.get("default_locale", "en")
    if default not in locales:
        raise _invalid(f"default_locale {default!r} has no entry in 'locales'")
    for loc, body in locales.items():
        if not isinstance(body, dict) or not isinstance(body.get("messages"), dict):
            raise _invalid(f"locales.{loc}.messages must be an object")
        for kind in MESSAGE_KINDS:
            per_variant = body["messages"].get(kind)
            if not isinstance(per_variant, dict):
                raise _invalid(f"locales.{loc}.messages.{kind} is missing")
            for variant in variants:
                msg = per_variant.get(variant)
                if not isinstance(msg, dict):
                    raise _invalid(f"locales.{loc}.messages.{kind}.{variant} is missing")
                require_text(msg.get("title"), f"locales.{loc}.messages.{kind}.{variant}.title")
                require_text(msg.get("body"), f"locales.{loc}.messages.{kind}.{variant}.body")
        support = body["messages"].get(SUPPORT)
        if not isinstance(support, dict):
            raise _invalid(f"locales.{loc}.messages.{SUPPORT} is missing (one message, shown to a person at risk)")
        require_text(support.get("title"), f"locales.{loc}.messages.{SUPPORT}.title")
        require_text(support.get("body"), f"locales.{loc}.messages.{SUPPORT}.body")
        helps = body.get("help")
        if not isinstance(helps, dict):
            raise _invalid(f"locales.{loc}.help must be an object")
        for help_set in HELP_SETS:
            entries = helps.get(help_set)
            if not isinstance(entries, list) or not entries:
                raise _invalid(f"locales.{loc}.help.{help_set} must be a non-empty list")
            for i, entry in enumerate(entries):
                validate_help_entry(entry, f"locales.{loc}.help.{help_set}[{i}]", sources)
    return data


def _check_weights(weights, error) -> None:
    for name, weight in weights.items():
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not math.isfinite(weight) or weight < 0:
            raise error(f"variant weight for {name!r} must be a number >= 0")
    if sum(weights.values()) <= 0:
        raise error("variant weights must not all be zero")


def load_messages(path: str | Path | None = None) -> dict:
    """The bundled messages, or an operator's file of the same shape; validated either way."""
    try:
        if path is None:
            raw = (resources.files("safehold.text") / "data" / "search_messages.json").read_bytes()
        else:
            raw = Path(path).read_bytes()
        data = json.loads(raw)
    except OSError as exc:
        raise _invalid(f"cannot read messages file: {exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(f"messages file is not valid JSON: {exc}") from exc
    return validate_messages(data)


def _bucket_point(bucket: str) -> float:
    """A stable point in [0, 1) per bucket: the same person sees the same variant across processes and restarts."""
    digest = hashlib.blake2b(bucket.encode("utf-8", "surrogatepass"), digest_size=8, person=b"sh.search").digest()
    return int.from_bytes(digest, "big") / 2**64


class QueryGuard:
    """Checks search queries and autocomplete suggestions. Build once per term list; ``check`` is thread-safe."""

    def __init__(
        self,
        terms: TermList | Matcher | None = None,
        messages: dict | None = None,
        variants: dict[str, float] | None = None,
    ):
        """``terms``: a list (default: the bundled starter list) or a ready :class:`Matcher` to share."""
        if isinstance(terms, Matcher):
            self._matcher = terms
        else:
            self._matcher = Matcher((load_starter() if terms is None else terms).terms)
        self._ages = _age_pattern(t for t in self._matcher.terms if t.category == AGE_UNIT)
        data = load_messages() if messages is None else validate_messages(messages)
        self._locales = data["locales"]
        self._default_locale = data.get("default_locale", "en")
        weights = dict(data["variants"]) if variants is None else dict(variants)
        unknown = set(weights) - set(data["variants"])
        if unknown:
            raise SafeholdError("search.invalid_variants", f"unknown variants: {', '.join(sorted(unknown))}")
        _check_weights(weights, lambda msg: SafeholdError("search.invalid_variants", msg))
        total = sum(weights.values())
        self.variants: tuple[str, ...] = tuple(data["variants"])  # every configured variant, shown or not
        self._variants: list[tuple[float, str]] = []
        running = 0.0
        for name, weight in weights.items():
            if weight > 0:
                running += weight / total
                self._variants.append((running, name))

    def resolve_locale(self, locale: str | None) -> str:
        """'pt-BR' -> 'pt' -> default: the most specific locale there are messages for."""
        if locale in self._locales:
            return locale
        if isinstance(locale, str) and locale:
            tag = locale.replace("_", "-").lower()
            if tag in self._locales:
                return tag
            primary = tag.split("-", 1)[0]
            if primary in self._locales:
                return primary
        return self._default_locale

    def pick_variant(self, bucket: str | None = None) -> str:
        point = random.random() if bucket is None else _bucket_point(bucket)
        for edge, name in self._variants:
            if point < edge:
                return name
        return self._variants[-1][1]  # float rounding can leave the last edge a hair below 1.0

    def categories(self, query: str, locale: str | None = None) -> set[str]:
        """The term categories the query carries, from every view of it (see the module docstring)."""
        if not isinstance(query, str):
            raise SafeholdError("search.invalid_query", "query must be a string")
        text = normalize(query)
        hits = self._matcher.find(text, normalized=True)
        plain = query.replace(" ", "").isalpha()  # no digit, no symbol: no unmasked view, no age (a C-speed test)
        alt = text if plain or not _MASKABLE.search(query) else unmasked(query)
        if alt != text:
            hits += self._matcher.find(alt, normalized=True)
        cats = _resolve_local(hits, locale) if hits else set()
        if not plain and self._ages is not None and _has_minor_age(self._ages, text):
            cats.add("minor")
        return cats

    def _rule(self, query: str, locale: str | None = None) -> _Rule | None:
        cats = self.categories(query, locale)
        if cats:
            for rule in RULES:
                if rule.needs.issubset(cats):
                    return rule
        return None

    def check(self, query: str, locale: str = "en", *, bucket: str | None = None) -> SearchDecision:
        rule = self._rule(query, locale)
        loc = self.resolve_locale(locale)
        if rule is None:
            return SearchDecision("allow", None, 0, loc, None, None)
        variant = None if rule.action == SUPPORT else self.pick_variant(bucket)
        return SearchDecision(
            rule.action, rule.category, _SEVERITY[rule.action], loc, variant, self._message(loc, rule, variant, locale)
        )

    def _message(self, locale: str, rule: _Rule, variant: str | None, requested: str | None) -> dict:
        """A fresh dict each time: callers may localise or extend it without touching the shared data. Help
        entries tied to regions are kept only for a searcher in one of them when the locale names a region
        ("en-CA" gets Kids Help Phone, not Childline); a locale without a region gets them all."""
        body = self._locales[locale]
        text = body["messages"][rule.message]
        if variant is not None:
            text = text[variant]
        region_tag = region(requested)
        keys = ("name", "url", "phone", "description")
        return {
            "title": text["title"],
            "body": text["body"],
            "help": [
                {k: entry[k] for k in keys if k in entry}
                for entry in body["help"][rule.help]
                if region_tag is None or "regions" not in entry or region_tag in entry["regions"]
            ],
        }

    def filter_suggestions(self, suggestions: list[str], locale: str = "en") -> tuple[list[str], dict[str, int]]:
        """Drop every suggestion the guard would warn on or block; autocomplete must never *offer* such a query.
        A suggestion the guard answers with ``support`` is kept: it leads a person at risk to help.

        Returns the kept suggestions in their original order and how many were removed per rule category.
        ``locale`` decides the ``.local`` context words, as in :meth:`check`.
        """
        kept: list[str] = []
        removed: dict[str, int] = {}
        for suggestion in suggestions:
            rule = self._rule(suggestion, locale)
            if rule is None or rule.action == SUPPORT:  # a help-seeking suggestion is safe to offer
                kept.append(suggestion)
            else:
                removed[rule.category] = removed.get(rule.category, 0) + 1
        return kept, removed


def _primary(locale: str | None) -> str | None:
    return locale.replace("_", "-").partition("-")[0].lower() if isinstance(locale, str) and locale else None


def region(locale: str | None) -> str | None:
    """The region subtag of a BCP 47 tag ("en-GB" -> "GB", "zh-Hant-TW" -> "TW"), if any."""
    if not isinstance(locale, str):
        return None
    for part in locale.replace("_", "-").split("-")[1:]:
        if len(part) == 2 and part.isalpha() or len(part) == 3 and part.isdigit():
            return part.upper()
    return None


def _resolve_local(hits: list[Hit], locale: str | None) -> set[str]:
    """Categories of the hits; a ``<category>.local`` hit counts as ``<category>`` only if the locale is its
    language or another hit (not itself, not a language-neutral "und" term) is in its language."""
    cats = {hit.term.category for hit in hits}
    if not any(c.endswith(LOCAL) for c in cats):
        return cats  # the common case
    cats = set()
    for hit in hits:
        category = hit.term.category
        if not category.endswith(LOCAL):
            cats.add(category)
            continue
        lang = hit.term.language
        if lang == _primary(locale) or any(
            h.term.language == lang and (h.start, h.end) != (hit.start, hit.end) for h in hits
        ):
            cats.add(category.removesuffix(LOCAL))
    return cats


def _age_pattern(units) -> re.Pattern | None:
    """One regex for "<number> <age unit>" over normalised text (the space is optional: "14yo", "12歳")."""
    spaced, unspaced = set(), set()
    for t in units:
        key = normalize(t.term)
        if key:
            (unspaced if UNSPACED.match(key[-1]) else spaced).add(re.escape(key))
    if not spaced and not unspaced:
        return None
    alternation = "|".join(
        part
        for part in (
            "(?:" + "|".join(sorted(spaced, key=len, reverse=True)) + ")(?= |$)" if spaced else "",
            "(?:" + "|".join(sorted(unspaced, key=len, reverse=True)) + ")" if unspaced else "",
        )
        if part
    )
    return re.compile(rf"(?<![0-9])([0-9]{{1,2}}) ?(?:{alternation})")


_DIGIT = re.compile(r"[0-9]")


def _has_minor_age(pattern: re.Pattern, text: str) -> bool:
    if not _DIGIT.search(text):
        return False
    return any(0 < int(m.group(1)) < ADULT for m in pattern.finditer(text))
