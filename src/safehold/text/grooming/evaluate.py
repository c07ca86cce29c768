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
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable

from safehold.text.grooming.pan2012 import Conversation
from safehold.text.grooming.scorer import GroomingScorer

ERISK_P = 0.0078


def f_beta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    denom = b2 * precision + recall
    return (1 + b2) * precision * recall / denom if denom else 0.0


def latency_penalty(k: int, p: float = ERISK_P) -> float:
    return -1.0 + 2.0 / (1.0 + math.exp(-p * (k - 1)))


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
    seen_messages: dict[str, int] = {}  # author -> messages seen so far (across conversations, in corpus order)
    first_alert: dict[str, int] = {}  # author -> k at the first alert
    n_conv = n_msg = 0
    elapsed = 0.0
    for conv in conversations:
        state = scorer.new_state()
        for m in conv.messages:
            seen_messages[m.author] = seen_messages.get(m.author, 0) + 1
            t = time.perf_counter()
            assessment = scorer.add(state, m)
            elapsed += time.perf_counter() - t
            n_msg += 1
            for name, info in assessment.participants.items():
                if info["risk"] >= threshold and name not in first_alert:
                    first_alert[name] = seen_messages.get(name, 0)
        n_conv += 1
        if progress:
            progress(n_conv)
    authors = set(seen_messages)
    positives = predators & authors
    flagged = set(first_alert)
    tp, fp, fn = len(flagged & positives), len(flagged - positives), len(positives - flagged)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = f_beta(precision, recall, 1.0)
    ks = [first_alert[a] for a in flagged & positives]
    speed = 1.0 - statistics.median(latency_penalty(k, latency_p) for k in ks) if ks else 0.0
    return {
        "conversations": n_conv,
        "messages": n_msg,
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
        "median_messages_to_alert": statistics.median(ks) if ks else None,
        "latency_ms_per_message": round(1000 * elapsed / n_msg, 4) if n_msg else 0.0,
    }
