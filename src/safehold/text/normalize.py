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

Arabic script is folded too (harakat and tatweel dropped; hamza-carrying alefs, alef maqsura, ta marbuta and
hamza seats mapped to their bare letter), because Arabic queries are typed with and without them.

A word that mixes scripts is resolved to one: to Latin when it has a Latin letter and no Cyrillic letter that
lacks a Latin lookalike; to Cyrillic when it has such a letter ("дeтcкoe" with Latin e, c, o -> "детское").

Two further *views* of a text serve matchers that want to see through more than the canonical form allows:

- :func:`unmasked`: every word with a Latin letter is read as leetspeak whatever its digits' position, with a
  wider table ("!" -> i, "|" -> l, "+" -> t, "€" -> e, "8" -> b, "9" -> g), and symbols inside a word of any
  script are dropped instead of splitting it ("ch!ld", "k1dd13", "p-o-r-n", "4nal", "дет.ское"). It is an
  *alternative* view: ages and product names ("12yo", "mp4") come out garbled in it, so a matcher uses it next
  to :func:`normalize`, never instead.
- :func:`transliterate`: Cyrillic and Greek to Latin letters (a common romanisation, e.g. "ж" -> "zh"), so a
  term written in Cyrillic also matches the same word typed in Latin letters.

:data:`UNSPACED` matches the characters of scripts written without spaces between words (Han, kana, Hangul
syllables glued to particles, Thai, Lao, Khmer, Myanmar, Arabic with its attached clitics); a matcher looks for
terms in those scripts inside words rather than as whole words.

Not caught (by design or yet): words split into multi-letter chunks ("se x", "chi ld"); homoglyphs from other
scripts than Cyrillic/Greek/Armenian; "ph" for "f"; deliberate misspellings ("seks"); numbers written as words;
meaning carried by images.
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

_LEET_MAP = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
_LEET = str.maketrans(_LEET_MAP)
#: The wider table of :func:`unmasked`; only used on the alternative view, where a false reading costs nothing.
_LEET_WIDE = str.maketrans({**_LEET_MAP, "8": "b", "9": "g", "!": "i", "|": "l", "+": "t", "€": "e", "¡": "i"})

# Latin letters that stand in for a Cyrillic letter inside an otherwise Cyrillic word (the reverse of
# CONFUSABLES, restricted to the lookalikes of letters Russian, Ukrainian, Bulgarian and Serbian use).
_LATIN_TO_CYRILLIC = str.maketrans({
    "a": "а", "b": "в", "c": "с", "e": "е", "h": "н", "i": "і", "k": "к", "m": "м", "o": "о", "p": "р",
    "t": "т", "x": "х", "y": "у",
})  # fmt: skip

# A common romanisation (close to ISO 9 / BGN-PCGN, ASCII only) of Cyrillic and Greek, after casefold.
_TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "ґ": "g", "д": "d", "е": "e", "ё": "e", "є": "ye", "ж": "zh",
    "з": "z", "и": "i", "і": "i", "ї": "yi", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya", "ђ": "dj", "ј": "j", "љ": "lj",
    "њ": "nj", "ћ": "c", "џ": "dz", "ў": "u",
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i", "κ": "k",
    "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s", "ς": "s", "τ": "t",
    "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o", "ά": "a", "έ": "e", "ή": "i", "ί": "i", "ό": "o", "ύ": "y",
    "ώ": "o", "ϊ": "i", "ϋ": "y", "ΐ": "i", "ΰ": "y",
})  # fmt: skip

#: Scripts written without spaces between words, or with clitics glued to them (see the module docstring).
UNSPACED = re.compile(
    "[\u0600-\u06ff\u0750-\u077f\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
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
    for cp in (*range(0x064B, 0x0660), 0x0670, 0x0640):  # Arabic harakat, superscript alef, tatweel
        table[cp] = None
    table.update({ord(k): v for k, v in {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و",
                                         "ئ": "ي", "ی": "ي", "ک": "ك"}.items()})  # fmt: skip
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
_LATINISH = "[a-z" + "".join(CONFUSABLES) + "]"  # leetspeak is read only between letters that may be Latin
_LEET_WORD = re.compile(rf"(?<!\S)\S*?{_LATINISH}(?:[0-9@$]+{_LATINISH}|[@$])\S*")
_LEET_INNER = re.compile(rf"{_LATINISH}(?:[0-9@$]+{_LATINISH}|[@$])")
_REPEAT = re.compile(r"([^\W\d_])\1\1+")
_SINGLES = re.compile(r"(?<!\S)\w(?: +\w)+(?!\S)")
_DIGIT = re.compile(r"\d")


def _unleet(match: re.Match) -> str:
    return match.group().translate(_LEET)


def _first(match: re.Match) -> str:
    return match.group(1)


def _fold_confusables(word: str) -> str:
    letters = {c for c in word if c.isalpha()}
    latin = any("a" <= c <= "z" for c in letters)
    if latin and any("\u0400" <= c <= "\u04ff" and c not in _CONFUSABLE_KEYS for c in letters):
        return word.translate(_LATIN_TO_CYRILLIC)  # a Cyrillic word with Latin lookalikes slipped in
    if not letters & _CONFUSABLE_KEYS:
        return word
    if letters <= _CONFUSABLE_KEYS or latin:
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


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text.translate(_PRE)).casefold().translate(_FOLD)


def _unicode_words(text: str) -> str:
    return _NONWORD.sub(" ", _folded(text))


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


_MASKED = re.compile(r"[^\s\w]|[\d_]")  # what :func:`unmasked` reads as leetspeak or drops inside a word


_HAS_LATINISH = re.compile(_LATINISH)


def _unmask_word(word: str) -> str:
    """Symbols inside the word dropped, in any script; digits read as letters only next to Latin letters."""
    if not _MASKED.search(word):
        return word
    return _NONWORD.sub("", word.translate(_LEET_WIDE) if _HAS_LATINISH.search(word) else word)


def unmasked(text: str) -> str:
    """The alternative, aggressive view (see the module docstring); normalised, so ``unmasked(x)`` can be
    compared with ``normalize(x)`` — it equals it when the text has nothing masked."""
    if len(text) > MAX_TEXT or not _MASKED.search(text):
        return normalize(text)  # nothing masked (the common case), or too long (raises text.too_long)
    s = text.lower() if text.isascii() else _folded(text)
    return normalize(" ".join([_unmask_word(w) for w in s.split()]))


def transliterate(text: str) -> str:
    """Cyrillic and Greek letters of ``text`` in Latin letters (casefolded first); other characters unchanged."""
    return text.casefold().translate(_TRANSLIT)


__all__ = [
    "CONFUSABLES",
    "EMOJI",
    "MAX_TEXT",
    "ONE_LETTER_WORDS",
    "SHORTHAND",
    "UNSPACED",
    "normalize",
    "transliterate",
    "unmasked",
]
