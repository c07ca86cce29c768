import math

import pytest

from safehold.text.grooming.evaluate import ERISK_P, evaluate, f_beta, latency_penalty
from safehold.text.grooming.pan2012 import Conversation, read_conversations, read_predators
from safehold.text.grooming.scorer import Assessment, Message


class FlagWord:
    """A stand-in scorer: an author's risk becomes 1 once they write "FLAG"; makes the figures hand-checkable."""

    alert_threshold = 0.7

    def new_state(self):
        return {}

    def add(self, state, message, profiles=None):
        state[message.author] = max(state.get(message.author, 0.0), 1.0 if "FLAG" in message.text else 0.0)
        participants = {a: {"risk": r} for a, r in state.items()}
        return Assessment(max(state.values()), "none", False, None, None, participants, [], [], 0)


def conv(cid, *lines):
    return Conversation(cid, [Message(a, t) for a, t in lines])


def test_hand_checked_example():
    conversations = [
        conv("1", ("a", "hi"), ("b", "hello"), ("a", "FLAG")),  # predator a flagged at its 2nd message: TP
        conv("2", ("b", "FLAG"), ("c", "hi")),  # b is not a predator: FP; predator c never flagged: FN
        conv("3", ("d", "FLAG"), ("e", "ok")),  # d is not a predator: FP; e is a true negative
    ]
    result = evaluate(FlagWord(), conversations, {"a", "c", "zz"})
    assert (result["tp"], result["fp"], result["fn"]) == (1, 2, 1)
    assert result["authors"] == 5 and result["predators"] == 2 and result["predators_absent"] == 1
    assert result["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["recall"] == 0.5
    # F0.5 = 1.25 * P * R / (0.25 * P + R) = 1.25 * (1/6) / (1/12 + 1/2) = 0.35714
    assert result["f0_5"] == pytest.approx(0.3571, abs=1e-4)
    assert result["f1"] == pytest.approx(0.4, abs=1e-4)
    assert result["median_messages_to_alert"] == 2
    speed = 1 - (-1 + 2 / (1 + math.exp(-ERISK_P)))
    assert result["speed"] == pytest.approx(speed, abs=1e-4)
    assert result["latency_weighted_f1"] == pytest.approx(0.4 * speed, abs=1e-4)
    assert result["messages"] == 7 and result["conversations"] == 3


def test_latency_penalty_and_f_beta():
    assert latency_penalty(1) == 0.0
    assert latency_penalty(1 + math.log(3) / ERISK_P) == pytest.approx(0.5)
    assert f_beta(0.0, 0.0, 0.5) == 0.0
    assert f_beta(1.0, 0.5, 0.5) == pytest.approx(1.25 * 0.5 / (0.25 + 0.5))


def test_threshold_override_and_progress():
    seen = []
    result = evaluate(FlagWord(), [conv("1", ("a", "FLAG"))], {"a"}, threshold=1.1, progress=seen.append)
    assert result["tp"] == 0 and result["fn"] == 1 and seen == [1]


def test_default_scorer_on_synthetic_corpus(scorer, corpus_paths):
    result = evaluate(scorer, read_conversations(corpus_paths[0]), read_predators(corpus_paths[1]))
    assert result["conversations"] >= 40
    # Not a benchmark (the corpus is small and written alongside the cue list): a floor against regressions.
    assert result["precision"] >= 0.8 and result["recall"] >= 0.6
