"""Author-level evaluation in the PAN-2012 way, plus early-detection figures.

PAN-2012 problem 1 (Inches & Crestani 2012) asks which *authors* are predators and ranks systems by F0.5, which
weighs precision over recall because every flag costs a human review. An author counts as flagged when their risk
reaches the threshold at any message of any conversation. Predators listed in ``predators`` who never write in the
evaluated conversations are not counted (reported as ``predators_absent``).

Early detection: a detector that alerts after 200 messages is worth less than one that alerts after 5. Following
Sadeque, Xu & Bethard (2018, "Measuring the latency of depression detection in social media", WSDM) as adopted by
the CLEF eRisk labs (Losada, Crestani & Parapar 2019), each true positive gets the latency penalty
``-1 + 2 / (1 + exp(-p * (k - 1)))`` where k is the number of the author's messages seen up to and including the
first alert; ``speed = 1 - median(penalty)`` and ``latency_weighted_f1 = f1 * speed``. ``p = 0.0078`` is eRisk's
value (penalty 0.5 at k ≈ 142); chat messages are shorter than eRisk's posts, so pass a larger ``latency_p`` to
penalise lateness more.

Two more latency figures, in the conversation's own terms: how many messages of the conversation had passed at the
first alert on its offender, and where that is as a share of the conversation (``alert_position``: 0.5 is the
midpoint). ``before_midpoint`` is the share of all offenders flagged in the first half of their conversation — an
alert after the meeting has been arranged protects nobody.

False positives are also counted per ``Conversation.source`` (IRC, chat rooms, sexting, …): a detector that is
quiet on technical chat but flags consenting adults is a different detector from one that errs evenly.

Scoring runs once (:func:`trace`: every participant's risk whenever it reaches a new high); the figures at any
threshold are then read from the trace (:func:`score`), so choosing a threshold on validation data costs one pass.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from safehold.text.grooming.pan2012 import Conversation
from safehold.text.grooming.scorer import GroomingScorer

ERISK_P = 0.0078


def f_beta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    denom = b2 * precision + recall
    return (1 + b2) * precision * recall / denom if denom else 0.0


def latency_penalty(k: int, p: float = ERISK_P) -> float:
    return -1.0 + 2.0 / (1.0 + math.exp(-p * (k - 1)))


@dataclass
class Peak:
    """A participant's risk reaching a new high: where in the conversation, after how many of their messages."""

    risk: float
    position: int  # messages of the conversation so far (1-based)
    own: int  # the author's messages so far, across conversations in corpus order
    length: int  # messages in that conversation


@dataclass
class Trace:
    conversations: int = 0
    messages: int = 0
    seconds: float = 0.0
    peaks: dict[str, list[Peak]] = field(default_factory=dict)  # author -> rising risks, in order
    source: dict[str, str] = field(default_factory=dict)  # author -> source of their first conversation


def trace(
    scorer: GroomingScorer,
    conversations: Iterable[Conversation],
    *,
    progress: Callable[[int], None] | None = None,
) -> Trace:
    """Run ``scorer`` over every conversation, one message at a time, recording each participant's rising risk."""
    t = Trace()
    seen: dict[str, int] = {}
    for conv in conversations:
        state = scorer.new_state()
        n = len(conv.messages)
        for i, m in enumerate(conv.messages, 1):
            seen[m.author] = seen.get(m.author, 0) + 1
            t.source.setdefault(m.author, conv.source)
            start = time.perf_counter()
            assessment = scorer.add(state, m)
            t.seconds += time.perf_counter() - start
            for name, info in assessment.participants.items():
                peaks = t.peaks.setdefault(name, [])
                if not peaks or info["risk"] > peaks[-1].risk:
                    peaks.append(Peak(info["risk"], i, seen.get(name, 0), n))
        t.messages += n
        t.conversations += 1
        if progress:
            progress(t.conversations)
    return t


def _first_alert(peaks: list[Peak], threshold: float) -> Peak | None:
    return next((p for p in peaks if p.risk >= threshold), None)


def score(t: Trace, predators: set[str], threshold: float, *, latency_p: float = ERISK_P) -> dict:
    """The PAN-2012 figures, latency and false positives per source at ``threshold``."""
    authors = set(t.source)
    positives = predators & authors
    alerts = {a: p for a in authors if (p := _first_alert(t.peaks.get(a, []), threshold))}
    flagged = set(alerts)
    tp, fp, fn = len(flagged & positives), len(flagged - positives), len(positives - flagged)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = f_beta(precision, recall, 1.0)
    hits = [alerts[a] for a in flagged & positives]
    speed = 1.0 - statistics.median(latency_penalty(p.own, latency_p) for p in hits) if hits else 0.0
    by_source: dict[str, dict] = {}
    for a in authors - positives:
        row = by_source.setdefault(t.source[a], {"authors": 0, "flagged": 0})
        row["authors"] += 1
        row["flagged"] += a in flagged
    for row in by_source.values():
        row["rate"] = round(row["flagged"] / row["authors"], 5)
    return {
        "conversations": t.conversations,
        "messages": t.messages,
        "authors": len(authors),
        "predators": len(positives),
        "predators_absent": len(predators - authors),
        "threshold": threshold,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f0_5": round(f_beta(precision, recall, 0.5), 4),
        "f1": round(f1, 4),
        "latency_p": latency_p,
        "speed": round(speed, 4),
        "latency_weighted_f1": round(f1 * speed, 4),
        "median_messages_to_alert": statistics.median(p.own for p in hits) if hits else None,
        "median_conversation_messages_to_alert": statistics.median(p.position for p in hits) if hits else None,
        "median_alert_position": round(statistics.median(p.position / p.length for p in hits), 4) if hits else None,
        "before_midpoint": round(sum(p.position <= p.length / 2 for p in hits) / len(positives), 4)
        if positives
        else None,
        "false_positives_by_source": dict(sorted(by_source.items())),
        "latency_ms_per_message": round(1000 * t.seconds / t.messages, 4) if t.messages else 0.0,
    }


def best_threshold(t: Trace, predators: set[str], *, beta: float = 0.5) -> float:
    """The threshold with the best F-beta on this trace. An author is flagged at a threshold if their highest risk
    reaches it, so sweeping the highest risks from the top gives every outcome in one pass; of equal scores the
    higher threshold wins (fewer alerts to review)."""
    positives = predators & set(t.source)
    tops = sorted(((peaks[-1].risk, a in positives) for a, peaks in t.peaks.items() if peaks), reverse=True)
    best, best_f, tp, fp = 1.0, -1.0, 0, 0
    for i, (risk, positive) in enumerate(tops):
        tp += positive
        fp += not positive
        if i + 1 < len(tops) and tops[i + 1][0] == risk:
            continue  # authors with the same risk are flagged together
        f = f_beta(tp / (tp + fp), tp / len(positives) if positives else 0.0, beta)
        if f > best_f:
            best, best_f = risk, f
    return best


def evaluate(
    scorer: GroomingScorer,
    conversations: Iterable[Conversation],
    predators: set[str],
    *,
    threshold: float | None = None,
    latency_p: float = ERISK_P,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run ``scorer`` over every conversation, one message at a time, and score the flagged authors."""
    threshold = scorer.alert_threshold if threshold is None else threshold
    return score(trace(scorer, conversations, progress=progress), predators, threshold, latency_p=latency_p)
