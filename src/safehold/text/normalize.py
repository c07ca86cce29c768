"""Fold text into one canonical form so a term list matches the spellings people use to dodge filters.

Term lists and incoming text both go through :func:`normalize`, so a term only has to be written once
("sex") to also match "SEX", "s3x", "ѕеx" (Cyrillic ѕ and е), "ｓｅｘ" (fullwidth), "s.e.x", "s e x", "sexxx"
and "s\u200bex" (zero-width space). The output is lower-case words separated by single spaces, made of
letters and digits only (plus the combining vowel signs that some scripts, e.g. Devanagari, need inside a
word), with no leading or trailing space. ``normalize(normalize(x)) == normalize(x)``.

Steps, in order (each is a ``str.translate`` table or one compiled regex, never a per-character Python
loop on the hot path; pure-ASCII input skips the Unicode steps):

1. Unicode only: drop format characters (zero-width space/joiners, bidi controls, soft hyphen, variation
   selectors, emoji skin tones, tag characters); replace the emoji in :data:`EMOJI` with a word; NFKC
   (fullwidth, mathematical and circled letters, ligatures -> plain letters); casefold; strip diacritics
   from Latin, Greek and Cyrillic letters ("niño" -> "nino", "mädchen" -> "madchen") and map Latin
   lookalikes that NFKC keeps (small capitals, regional-indicator and squared letters, "ø", "ł", "æ").
2. Punctuation, symbols and "_" become spaces; "@" and "$" are kept only inside a word (for leetspeak), so
   "@handle" and "$cashtag" become "handle" and "cashtag".
3. Leetspeak: in a word with leet characters *between* letters ("s3x", "p0rn", "n00dz") or "@"/"$" right after
   a letter ("a$$"), 0->o 1->i 3->e 4->a 5->s 7->t @->a $->s. A number that only starts or ends a word is left
   alone, so ages and product names survive ("12yo", "13f", "mp4", "covid19"); the cost is that "4nal"-style
   spellings with a leading or trailing digit are not decoded.
4. Unicode only: homoglyphs — Cyrillic/Greek/Armenian letters that look Latin (:data:`CONFUSABLES`) become
   Latin, but only in a word that also has a Latin letter ("pаypal" with Cyrillic а) or whose letters are all
   lookalikes ("ѕех"); other Russian or Greek words keep their letters (an all-lookalike one such as "как" is
   folded too, which is harmless for matching Latin-script terms).
5. Runs of three or more of the same letter become one ("heyyy" -> "hey", "sooo" -> "so"); doubles stay
   ("good"). Digits are never collapsed ("1000").
6. Rejoin words spelled out in single characters: a run of single-letter/digit words joins into one word
   ("s e x", "s.e.x", "c-p" -> "sex", "cp") *unless* the run is made only of words that stand alone in
   normal writing (:data:`ONE_LETTER_WORDS`: "a", "i", "e", "o", "y", "u", "r"), or, for a run of two, either
   word is one ("i a", "u r", "c u" stay apart). The joined word gets steps 3-5 again ("s 3 x" -> "sex").
7. Texting shorthand, per word, from the small :data:`SHORTHAND` map ("u" -> "you", "pls" -> "please",
   "pic" -> "picture").

Not caught (by design or yet): words split into multi-letter chunks ("se x", "chi ld"); homoglyphs from other
scripts than Cyrillic/Greek/Armenian; leetspeak with digits only at the edge of a word or with characters other
than the listed ones ("|<", "ph" for "f"); deliberate misspellings ("seks"); meaning carried by images.
"""

from __future__ import annotations

import re
import unicodedata

from safehold.errors import SafeholdError

MAX_TEXT = 100_000

# Emoji with a widely reported second meaning, or a literal meaning that matters to child safety, mapped to a
# word that term lists can name. Literal names follow Unicode CLDR short names. Sources for second meanings:
# [lorenz2022] Taylor Lorenz, "Internet 'algospeak' is changing our language in real time, from 'nip nops' to
#   'le dollar bean'", The Washington Post, 8 April 2022 (corn = porn on TikTok and elsewhere).
# [emojipedia] Emojipedia entries for 🍆 Eggplant, 🍑 Peach and 💦 Sweat Droplets, which document their common
#   sexual use (emojipedia.org).
# [snap] Snap Inc. brand guidelines: the ghost ("Ghostface Chillah") is Snapchat's logo.
EMOJI: dict[str, str] = {
    "🌽": "porn",  # lorenz2022
    "🍆": "sexual",  # emojipedia
    "🍑": "sexual",  # emojipedia
    "💦": "sexual",  # emojipedia
    "👻": "snapchat",  # snap
    "📷": "picture",
    "📸": "picture",
    "🖼": "picture",
    "🎥": "video",
    "📹": "video",
    "📼": "video",
    "💰": "money",
    "💵": "money",
    "💶": "money",
    "💷": "money",
    "💴": "money",
    "💸": "money",
    "🤑": "money",
    "💲": "money",
    "🎁": "gift",
    "🔒": "secret",
    "🔐": "secret",
    "🤫": "secret",
    "🤐": "secret",
    "🧒": "child",
    "👧": "girl",
    "👦": "boy",
    "👶": "baby",
    "🔞": "nsfw",
    "🔗": "link",
}

# Lower-case letters of other scripts that look like a Latin letter (lower- or upper-case form), after casefold.
# Drawn from the Unicode confusables data (UTS #39, confusables.txt), restricted to clear one-to-one lookalikes.
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y",
    "ь": "b", "п": "n", "г": "r",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϳ": "j",
    # Armenian
    "օ": "o", "ս": "u", "ո": "n", "հ": "h", "ց": "g",
}  # fmt: skip

ONE_LETTER_WORDS = frozenset("aieoyur")

# Texting shorthand that changes how a phrase reads to a term list. Kept small on purpose: every entry is a
# word that is almost never anything else in chat. Values are already normalised (idempotence).
SHORTHAND: dict[str, str] = {
    "u": "you",
    "r": "are",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "pic": "picture",
    "pics": "pictures",
    "vid": "video",
    "vids": "videos",
    "msg": "message",
    "ppl": "people",
}

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_DROP_SIGILS = str.maketrans("", "", "@$")


def _ascii_table() -> bytes:
    """Byte table for ASCII input: lower-case letters, keep digits and "@"/"$" (step 4), anything else -> space."""
    table = bytearray(b" " * 256)
    for c in "abcdefghijklmnopqrstuvwxyz0123456789@$":
        table[ord(c)] = ord(c)
        table[ord(c.upper())] = ord(c)
    return bytes(table)


def _ranges(predicate, stop: int) -> str:
    """Regex character-class body for the code points below ``stop`` that satisfy ``predicate``."""
    parts: list[str] = []
    start = None
    for cp in range(stop + 1):
        if cp < stop and predicate(chr(cp)):
            if start is None:
                start = cp
        elif start is not None:
            last = cp - 1
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(last)) if last > start else ""))
            start = None
    return "".join(parts)


def _pre_table() -> dict[int, str | None]:
    """Before NFKC: drop invisible formatting characters and turn known emoji into words."""
    table: dict[int, str | None] = {}
    for cp in range(0x10000):
        if unicodedata.category(chr(cp)) == "Cf":
            table[cp] = None
    for cp in (*range(0xFE00, 0xFE10), *range(0xE0000, 0xE0080), *range(0xE0100, 0xE01F0), *range(0x1F3FB, 0x1F400)):
        table[cp] = None
    table[0x034F] = None  # combining grapheme joiner
    for emoji, word in EMOJI.items():
        table[ord(emoji)] = f" {word} "
    return table


def _fold_table() -> dict[int, str | None]:
    """After NFKC + casefold: strip diacritics and map Latin lookalikes NFKC leaves alone."""
    extra = {
        "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ħ": "h", "ı": "i", "ŀ": "l",
        "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʏ": "y",
        "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
        "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
        "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
    }  # fmt: skip
    latin = str.maketrans(extra)
    table: dict[int, str | None] = {ord(ch): value for ch, value in extra.items()}
    for cp in (*range(0x00C0, 0x0530), *range(0x1E00, 0x2000)):
        ch = chr(cp)
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base and base != ch:
            table[cp] = base.casefold().translate(latin)  # "ǿ" -> "ø" -> "o"
    for cp in (*range(0x0300, 0x0370), *range(0x1AB0, 0x1B00), *range(0x1DC0, 0x1E00), *range(0x20D0, 0x2100)):
        if unicodedata.combining(chr(cp)) or unicodedata.category(chr(cp)).startswith("M"):
            table[cp] = None
    for cp in range(0xFE20, 0xFE30):
        table[cp] = None
    for i in range(26):
        letter = chr(ord("a") + i)
        for block in (0x1F1E6, 0x1F150, 0x1F170, 0x1F130):  # regional indicators, negative circled/squared, squared
            table[block + i] = letter
    return table


_ASCII = _ascii_table()
_PRE = _pre_table()
_FOLD = _fold_table()
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)
_CONFUSABLE_KEYS = frozenset(CONFUSABLES)
_MARKS = _ranges(lambda c: unicodedata.category(c).startswith("M"), 0x10000)

# Unicode path: anything that is not a letter, digit, mark, "@" or "$" is a separator ("_" too).
_NONWORD = re.compile(rf"[^\w@${_MARKS}]|_")
_HAS_CONFUSABLE = re.compile("[" + "".join(CONFUSABLES) + "]")
_LEAD_SIGIL = re.compile(r"(?<![\w@$])[@$]+")
_LEET_WORD = re.compile(r"(?<!\S)\S*?[^\W\d_](?:[0-9@$]+[^\W\d_]|[@$])\S*")
_LEET_INNER = re.compile(r"[^\W\d_](?:[0-9@$]+[^\W\d_]|[@$])")
_REPEAT = re.compile(r"([^\W\d_])\1\1+")
_SINGLES = re.compile(r"(?<!\S)\w(?: +\w)+(?!\S)")
_DIGIT = re.compile(r"\d")


def _unleet(match: re.Match) -> str:
    return match.group().translate(_LEET)


def _first(match: re.Match) -> str:
    return match.group(1)


def _fold_confusables(word: str) -> str:
    chars = set(word)
    if not chars & _CONFUSABLE_KEYS:
        return word
    letters = {c for c in chars if c.isalpha()}
    if letters <= _CONFUSABLE_KEYS or any("a" <= c <= "z" for c in letters):
        return word.translate(_CONFUSABLE_TABLE)
    return word


def _rejoin(match: re.Match) -> str:
    parts = match.group().split()
    standalone = [p in ONE_LETTER_WORDS for p in parts]
    if all(standalone) or (len(parts) == 2 and any(standalone)):
        return match.group()
    word = "".join(parts)
    if _LEET_INNER.search(word):
        word = word.translate(_LEET)
    return _REPEAT.sub(_first, _fold_confusables(word))


def _unicode_words(text: str) -> str:
    s = unicodedata.normalize("NFKC", text.translate(_PRE)).casefold().translate(_FOLD)
    return _NONWORD.sub(" ", s)


def normalize(text: str) -> str:
    """Return the canonical form of ``text`` (see the module docstring for the exact steps)."""
    if len(text) > MAX_TEXT:
        raise SafeholdError(
            "text.too_long",
            f"Text is {len(text):,} characters; the limit is {MAX_TEXT:,}.",
            detail={"length": len(text), "limit": MAX_TEXT},
        )
    # Each step first runs a cheap search, so the common case (nothing to fix) costs one scan per step.
    ascii_only = text.isascii()
    s = text.encode().translate(_ASCII).decode() if ascii_only else _unicode_words(text)
    if "@" in s or "$" in s:
        s = _LEAD_SIGIL.sub(" ", s)
        s = _LEET_WORD.sub(_unleet, s).translate(_DROP_SIGILS)
    elif _DIGIT.search(s) and _LEET_INNER.search(s):
        s = _LEET_WORD.sub(_unleet, s)
    if not ascii_only and _HAS_CONFUSABLE.search(s):  # after leetspeak, which may add the Latin letter
        s = " ".join([_fold_confusables(w) for w in s.split()])
    if _REPEAT.search(s):
        s = _REPEAT.sub(_first, s)
    if _SINGLES.search(s):
        s = _SINGLES.sub(_rejoin, s)
    return " ".join([SHORTHAND.get(w, w) for w in s.split()])


__all__ = ["CONFUSABLES", "EMOJI", "MAX_TEXT", "ONE_LETTER_WORDS", "SHORTHAND", "normalize"]
