"""What the learned grooming model sees of a participant, computed the same way when training and when scoring.

Two kinds of features, both kept incrementally in the conversation state (O(1) per participant, whatever the length
of the conversation):

- **Text**: each message becomes the words (optionally also their character n-grams, ``chars``) and the word
  bigrams of its normalised text, each counted once, hashed (crc32, stable across processes) into ``buckets``
  buckets, each gram counting ``1 / sqrt(grams in the message)`` so that long messages do not outweigh short ones.
  A participant's text vector is the *sum* of their message vectors divided by ``messages + shrink``: a shrunken
  mean. The mean makes the feature independent of how long a conversation is (offender logs are hundreds of
  messages, a chat-room visit a dozen; a model must not learn length), and the ``shrink`` pseudo-messages keep one
  or two lines from carrying a full-strength score. Because the model is linear in this vector, the state keeps
  only the running sum of the message scores ``w · x``.
- **Behaviour**: the stage strengths of the cue scorer and its rule risk, how many stages, declared ages (the other
  participant a minor, oneself an adult or a minor), who escalates (this participant raised sexual talk or a
  meeting before anyone else in the conversation did), and how much of what they write are questions (groomers
  interview: age, school, parents, being alone).

Left out on purpose: message counts, share of the conversation and reply timing. In the training data they tell
the corpora apart (the offender logs are long two-party chats whose turn order was lost) rather than groomers from
others, so a model would learn the corpus, not the behaviour.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

SHRINK = 8.0
CHARS = 0  # measured: character 4-grams gave the same validation F0.5 and cost a fifth of the speed
QUESTIONS = "questions"  # a rate (count / (messages + shrink)), like the text vector
_MARK = b"\x01"  # word boundary inside character n-grams; never part of a normalised word


def word_grams(word: str, chars: int = CHARS) -> list[int]:
    """The hash of a word and of its character ``chars``-grams (with boundary marks: "_lol_" gives "_lol", "lol_").

    Character n-grams carry what word n-grams miss in chat: run-together words ("letsseeyourpix"), creative
    spellings and word stems."""
    b = word.encode()
    out = [zlib.crc32(b)]
    if chars and len(b) > chars - 2:
        p = _MARK + b + _MARK
        out.extend([zlib.crc32(p[i : i + chars]) for i in range(len(p) - chars + 1)])
    return out


def grams(norm: str, chars: int = CHARS) -> list[int]:
    """The 32-bit hashes of the distinct words (with their character n-grams) and the distinct word bigrams of
    normalised text.

    Distinct, so that a message repeating one word a thousand times weighs no more than the word once. A bigram's
    hash continues the first word's crc32 with " word2", which equals crc32("word1 word2")."""
    words = norm.split()
    out: list[int] = []
    for w in dict.fromkeys(words):
        out.extend(word_grams(w, chars))
    out.extend({zlib.crc32(b" " + b.encode(), zlib.crc32(a.encode())) for a, b in zip(words, words[1:], strict=False)})
    return out


def message_vector(norm: str, buckets: int, chars: int = CHARS) -> tuple[list[int], float]:
    """(bucket index of each gram, the value each adds) for one message; ([], 0.0) for a message with no words.
    Each gram adds ``1 / sqrt(grams in the message)``: the message's vector has length 1 (up to hash collisions),
    so long messages do not outweigh short ones."""
    gs = grams(norm, chars)
    if not gs:
        return [], 0.0
    return [g % buckets for g in gs], 1.0 / math.sqrt(len(gs))


def behaviour(
    stages: dict[str, float],
    rule_risk: float,
    *,
    partner_minor: bool,
    age: int | None,
    adult_age: int,
    escalates: bool,
    questions: int,
    messages: int,
    shrink: float = SHRINK,
) -> dict[str, float]:
    """The named (non-text) features of one participant; absent names are 0."""
    f = {f"stage:{s}": v for s, v in stages.items()}
    f["rule_risk"] = rule_risk
    f["stages"] = len(stages) / 5.0
    if partner_minor:
        f["partner_minor"] = 1.0
    if age is not None:
        f["self_adult" if age >= adult_age else "self_minor"] = 1.0
    if escalates:
        f["escalates"] = 1.0
    if questions:
        f[QUESTIONS] = questions / (messages + shrink)
    return f


def dot(weights: dict[str, float], features: Iterable[tuple[str, float]]) -> float:
    return sum(weights.get(k, 0.0) * v for k, v in features)
