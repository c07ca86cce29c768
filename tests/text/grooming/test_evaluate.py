import math

import pytest

from safehold.text.grooming.evaluate import ERISK_P, best_threshold, evaluate, f_beta, latency_penalty, trace
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


def conv(cid, *lines, source=""):
    return Conversation(cid, [Message(a, t) for a, t in lines], source=source)


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


def test_midpoint_latency_and_false_positives_per_source():
    conversations = [
        # offender a flagged at message 2 of 6: before the midpoint
        conv("1", ("a", "hi"), ("a", "FLAG"), ("x", "ok"), ("x", "ok"), ("x", "ok"), ("x", "ok"), source="pj"),
        # offender c flagged at message 4 of 4: after it
        conv("2", ("c", "hi"), ("y", "hello"), ("y", "hm"), ("c", "FLAG"), source="pj"),
        conv("3", ("d", "FLAG"), ("e", "ok"), source="irc"),  # d: a false positive from irc
        conv("4", ("f", "fine"), ("g", "ok"), source="sexting"),
    ]
    result = evaluate(FlagWord(), conversations, {"a", "c"})
    assert result["median_conversation_messages_to_alert"] == 3  # median of 2 and 4
    assert result["median_alert_position"] == pytest.approx((2 / 6 + 4 / 4) / 2, abs=1e-4)
    assert result["before_midpoint"] == 0.5  # a only, of two offenders
    assert result["false_positives_by_source"] == {
        "irc": {"authors": 2, "flagged": 1, "rate": 0.5},
        "pj": {"authors": 2, "flagged": 0, "rate": 0.0},
        "sexting": {"authors": 2, "flagged": 0, "rate": 0.0},
    }


class Fixed:
    """A stand-in scorer giving each author a fixed risk."""

    alert_threshold = 0.7

    def __init__(self, risks):
        self.risks = risks

    def new_state(self):
        return {}

    def add(self, state, message, profiles=None):
        state[message.author] = self.risks[message.author]
        return Assessment(0.0, "none", False, None, None, {a: {"risk": r} for a, r in state.items()}, [], [], 0)


def test_best_threshold_maximises_f05():
    risks = {"p1": 0.9, "p2": 0.6, "n1": 0.65, "n2": 0.2, "p3": 0.1}
    t = trace(Fixed(risks), [conv(a, (a, "x")) for a in risks])
    # 0.9: P 1, R 1/3 -> F0.5 0.714; 0.65: P 1/2, R 1/3 -> 0.4545; 0.6: P 2/3, R 2/3 -> 0.667; lower: worse
    assert best_threshold(t, {"p1", "p2", "p3"}) == 0.9
    assert best_threshold(t, {"p1", "p2", "p3"}, beta=2.0) == 0.1  # recall first: flag everyone (F2 0.88)


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
