"""Advertising and soliciting of abuse material or access to children (Voluntary Principle 4).

Posts, profiles, listings, comments and messages that *offer, request or trade* abuse material rarely contain the
material itself: they contain the shape of a transaction. Published research on how this material is traded (P2P
keyword studies such as Latapy, Magnien & Fournier 2013; Europol IOCTA reports on CSAM sold through messenger
channels and paid with crypto) shows the same parts again and again: a content term, trading language, a way to
move the conversation off-platform (an invite link or a messenger handle) and a way to pay. One of these parts alone
is ordinary ("selling my bike, call me", "join our discord"); the risk is in the *combination*. So the scorer
extracts the parts and scores the combination:

=====================================================  =====  ================================================
parts present                                          score  reading
=====================================================  =====  ================================================
``csam`` term + offer/channel/payment                  0.95   advertising abuse material
``minor`` + ``sexual`` + offer/channel/payment         0.90   advertising abuse material in plain words
``sextortion`` + payment                               0.85   a threat with a payment demand
``csam`` term alone                                    0.75   the term's only common use is CSAM
``minor`` + explicit trading + off-platform channel    0.70   offering access to children via a messenger
``minor`` + ``sexual``                                 0.60   sexualised talk about children
``sextortion`` alone                                   0.50   a threat to share images
``minor_ambiguous`` + ``sexual`` + offer/channel/pay   0.45   "young"-labelled sexual content for sale
``minor`` + explicit trading + phone/email/payment     0.40   worth a look, often ordinary children's goods
``minor_ambiguous`` + ``sexual``                       0.25
``sexual`` + explicit trading + channel/payment        0.25   adult content for sale, moving off-platform
any single signal                                      0.10   one weak part alone
=====================================================  =====  ================================================

A "channel" is any way to reach the poster or the material elsewhere: a messenger name or handle, an invite link,
a phone number, an e-mail address or any link. The result's score is the highest matching row; levels: high >= 0.7,
medium >= 0.4, low > 0, none. "Offer" is explicit trading language, or ``kind="listing"`` (a listing is an offer by
nature), except in the access-to-children rows, which need explicit trading words so that every children's-goods
listing is not flagged. Known gap: a seller of children's goods who writes "selling kids clothes, add me on
telegram" scores high; platforms whose listings are mostly children's goods should route that row to review rather
than removal. ``kind`` has no other effect.

Extraction works on the raw text (normalising would destroy URLs and addresses) after undoing the common link
obfuscations ``t[.]me``, ``t(dot)me`` and ``t dot me``: every URL (scheme, ``www.`` or a bare domain with a common
TLD, including ``.onion``), invite links (Telegram, Discord, WhatsApp, Signal, Kik, Snapchat add links), payment
links and handles (``$cashtag``, paypal.me, cash.app, venmo, "venmo @name"), BTC/ETH/XMR address shapes, Session
ids, messenger handles written as "kik: name" / "wickr @name", phone numbers (9–15 digits) and e-mail addresses.
It does not check whether an address or link is live, and does not catch handles written without a separator.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from safehold.errors import SafeholdError
from safehold.text.normalize import MAX_TEXT, normalize
from safehold.text.terms import LOCAL, SEARCH_ONLY, Matcher, TermList, load_starter

KINDS = ("post", "profile", "listing", "comment", "message")

_TLDS = (
    "com|net|org|info|biz|io|me|gg|co|to|ru|su|cc|tk|ly|xyz|top|site|online|link|app|live|chat|tv|ai|us|uk|de|fr|es|"
    "pt|br|onion"
)
_OBFUSCATED_DOT = re.compile(r"\s*[\[({]\s*(?:\.|dot)\s*[\])}]\s*|\s+dot\s+", re.IGNORECASE)
_APPS = r"kik|wickr(?:\s*me)?|snap(?:chat)?|sc|telegram|tg|signal|discord|whatsapp|threema|element"
_PAY_APPS = r"venmo|cash\s*app|paypal|zelle"
_HANDLE_TAIL = r")\b\s*(?:id|name|user(?:name)?|me|at)?\s*[:=@]\s*@?(?P<{g}>[A-Za-z0-9][A-Za-z0-9_.\-]{{2,63}})"
# One alternation, tried left to right at each position: the earlier, more specific shapes (an e-mail before the
# bare domain inside it, a Session id before a phone number) win, and matches never overlap.
_EXTRACT = re.compile(
    "|".join(
        (
            r"(?P<url>(?:https?://|www\.)[^\s<>\"']+)",
            r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)",
            r"(?<![\w])(?P<session>05[0-9a-fA-F]{64})(?![\w])",
            r"(?<![\w])(?P<eth>0x[0-9a-fA-F]{40})(?![\w])",
            r"(?<![\w])(?P<xmr>[48][0-9AB][1-9A-HJ-NP-Za-km-z]{93})(?![\w])",
            r"(?<![\w])(?P<btc>bc1[ac-hj-np-z02-9]{11,71}|[13][a-km-zA-HJ-NP-Z1-9]{25,34})(?![\w])",
            r"(?<![\w$])(?P<cashtag>\$[A-Za-z][A-Za-z0-9_]{0,19})(?![\w])",
            r"\b(?:" + _APPS + _HANDLE_TAIL.format(g="app_handle"),
            r"\b(?:" + _PAY_APPS + _HANDLE_TAIL.format(g="pay_handle"),
            r"(?<![\w@.-])(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:" + _TLDS + r")(?::\d+)?"
            r"(?:/[^\s<>\"']*)?)(?![\w-])",
            r"(?<![\w+])(?P<phone>\+?\(?\d(?:[\s().-]{0,2}\d){8,14})(?!\w)",
        )
    ),
    re.IGNORECASE,
)
_TRAILING = ".,;:!?)]}'\""
_INVITE_HOSTS = {
    "t.me",
    "telegram.me",
    "telegram.dog",
    "discord.gg",
    "chat.whatsapp.com",
    "wa.me",
    "signal.group",
    "signal.me",
    "kik.me",
}
_INVITE_PATHS = {"discord.com": "/invite/", "discordapp.com": "/invite/", "snapchat.com": "/add/"}
_PAYMENT_HOSTS = {"paypal.me", "cash.app", "venmo.com", "account.venmo.com"}
_PAYMENT_PATHS = {"paypal.com": "/paypalme/"}


def _classify_url(url: str) -> tuple[str, str]:
    """(signal type, category) of a URL: invite links and payment links count as channels, others as plain URLs."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = (parts.hostname or "").removeprefix("www.")
    has_target = parts.path.strip("/") or parts.fragment
    if (host in _INVITE_HOSTS and has_target) or parts.path.startswith(_INVITE_PATHS.get(host, "\0")):
        return "invite_link", "offplatform"
    if (host in _PAYMENT_HOSTS and has_target) or parts.path.lower().startswith(_PAYMENT_PATHS.get(host, "\0")):
        return "payment_handle", "payment"
    return "url", "url"


_GROUP_SIGNAL = {
    "email": ("contact", "contact"),
    "phone": ("contact", "contact"),
    "session": ("contact", "offplatform"),
    "app_handle": ("contact", "offplatform"),
    "eth": ("payment_handle", "payment"),
    "xmr": ("payment_handle", "payment"),
    "btc": ("payment_handle", "payment"),
    "cashtag": ("payment_handle", "payment"),
    "pay_handle": ("payment_handle", "payment"),
}


def extract(text: str) -> tuple[list[dict], list[str]]:
    """Signals (non-term) and every URL in ``text``, in order of appearance, without duplicates."""
    text = _OBFUSCATED_DOT.sub(".", text)
    signals: list[dict] = []
    urls: list[str] = []
    seen: set[tuple[str, str]] = set()
    for m in _EXTRACT.finditer(text):
        group = m.lastgroup
        value = m.group(group)
        if group in ("url", "domain"):
            value = value.rstrip(_TRAILING)
            if value not in urls:
                urls.append(value)
            kind, category = _classify_url(value)
        else:
            kind, category = _GROUP_SIGNAL[group]
            if group in ("app_handle", "pay_handle"):
                value = m.group(0)  # keep the app's name: "kik: name" says more to a reviewer than "name"
        if (kind, value) not in seen:
            seen.add((kind, value))
            signals.append({"type": kind, "value": value, "category": category})
    return signals, urls


@dataclass
class SolicitationResult:
    score: float
    level: str
    categories: dict[str, int]
    signals: list[dict]
    urls: list[str]
    explanation: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Rule:
    score: float
    needs: tuple[str, ...]  # all of these parts
    any_of: tuple[str, ...]  # and at least one of these (empty: no further condition)
    explanation: str


_CHANNEL = ("offer", "channel", "payment")
_RULES = (
    _Rule(0.95, ("csam",), _CHANNEL, "Terms used to seek or offer child sexual abuse material, with {channels}."),
    _Rule(0.90, ("minor", "sexual"), _CHANNEL, "Child and sexual terms together, with {channels}."),
    _Rule(0.85, ("sextortion",), ("payment",), "A threat to share images together with a payment route."),
    _Rule(0.75, ("csam",), (), "Terms used to seek or offer child sexual abuse material."),
    _Rule(0.70, ("minor", "trading"), ("offplatform",), "Trading language about children, with {channels}."),
    _Rule(0.60, ("minor", "sexual"), (), "Child and sexual terms together."),
    _Rule(0.50, ("sextortion",), (), "Language threatening to share someone's images."),
    _Rule(0.45, ("minor_ambiguous", "sexual"), _CHANNEL, "Youth-labelled sexual content with {channels}."),
    _Rule(0.40, ("minor", "trading"), ("contact", "payment"), "Trading language about children, with {channels}."),
    _Rule(0.25, ("minor_ambiguous", "sexual"), (), "Youth-labelled sexual terms."),
    _Rule(0.25, ("sexual", "trading"), ("channel", "payment"), "Sexual content offered for trade with {channels}."),
)
_PART_NAMES = {
    "offer": "an offer to trade or sell",
    "channel": "a contact or link elsewhere",
    "offplatform": "an off-platform messenger or invite link",
    "contact": "a phone number or e-mail",
    "payment": "a payment route",
}


def _level(score: float) -> str:
    if score >= 0.7:
        return "high"
    if score >= 0.4:
        return "medium"
    return "low" if score > 0 else "none"


class SolicitationScorer:
    """Scores one piece of text for soliciting abuse material or access to children. Thread-safe after init."""

    def __init__(self, terms: TermList | Matcher | None = None):
        """``terms``: a list (default: the bundled starter list) or a ready :class:`Matcher` to share with the
        search guard (building one for a large list takes seconds)."""
        if isinstance(terms, Matcher):
            self._matcher = terms
        else:
            self._matcher = Matcher((load_starter() if terms is None else terms).terms)

    def score(self, text: str, kind: str = "post") -> SolicitationResult:
        if kind not in KINDS:
            raise SafeholdError(
                "solicitation.invalid_kind",
                f"kind must be one of {', '.join(KINDS)}, not {kind!r}",
                detail={"kinds": list(KINDS)},
            )
        if not isinstance(text, str):
            raise SafeholdError("text.invalid", "text must be a string")
        if len(text) > MAX_TEXT:
            raise SafeholdError(
                "text.too_long", f"text is {len(text)} characters; the limit is {MAX_TEXT}", detail={"max": MAX_TEXT}
            )
        categories: dict[str, int] = {}
        signals: list[dict] = []
        seen_terms: set[tuple[str, str]] = set()
        for hit in self._matcher.find(normalize(text), normalized=True):
            term = hit.term
            if term.category in SEARCH_ONLY or term.category.endswith(LOCAL):
                continue  # the guard's own cues; a .local word's language is unknown here
            categories[term.category] = max(categories.get(term.category, 0), term.severity)
            if (term.term, term.category) not in seen_terms:
                seen_terms.add((term.term, term.category))
                signals.append({"type": "term", "value": term.term, "category": term.category})
        extracted, urls = extract(text)
        for signal in extracted:
            if signal["category"] != "url":
                categories.setdefault(signal["category"], 1)
        signals.extend(extracted)

        parts = set(categories)
        if parts & {"offplatform", "contact"} or urls:
            parts.add("channel")
        if "trading" in parts or kind == "listing":
            parts.add("offer")
        score, explanation = 0.0, []
        for rule in _RULES:
            if not parts.issuperset(rule.needs):
                continue
            present = [p for p in rule.any_of if p in parts]
            if rule.any_of and not present:
                continue
            score = max(score, rule.score)
            explanation.append(rule.explanation.format(channels=" and ".join(_PART_NAMES[p] for p in present)))
        if not explanation and categories:
            score = 0.1
            explanation.append("Only weak signals on their own: " + ", ".join(sorted(categories)) + ".")
        return SolicitationResult(score, _level(score), categories, signals, urls, explanation)
