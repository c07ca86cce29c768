"""The conversation door records the ages participants state in the chat, and the ages the platform gives them,
as age signals of their accounts: once per change, in the batch's transaction."""

from __future__ import annotations

import pytest

from safehold.safety.ages import CHAT_CONFIDENCE

GROOMING = [
    "you are so mature for your age",
    "are you home alone right now?",
    "don't tell your parents we talk ok",
    "add me on snap its easier",
    "we should meet up sometime",
]


def send(svc, cid, *messages, participants=None):
    body = {"messages": [{"id": i, "author": a, "text": t} for i, a, t in messages]}
    if participants:
        body["participants"] = participants
    return svc.conversations.add_messages("apikey:platform", cid, body)


def test_a_stated_age_makes_the_account_a_minor_by_the_protective_rule(svc):
    send(svc, "c1", ("m1", "helper", "hey, how was school"), ("m2", "X", "boring lol, i'm 13"))
    age = svc.ages.show("X")
    assert (age["band"], age["rule"]) == ("13-15", "protective")
    assert age["signal"]["source"] == "chat" and age["signal"]["confidence"] == CHAT_CONFIDENCE
    assert age["signal"]["reference"] == "conversation:c1/m2" and age["signal"]["age"] == 13
    assert svc.ages.band("helper") == "unknown"


def test_a_chatty_account_is_one_signal_per_change(svc):
    send(svc, "c1", ("m1", "X", "im 13"), ("m2", "X", "yes im 13"))
    send(svc, "c1", ("m3", "X", "i said im 13"))
    send(svc, "c2", ("m1", "X", "im 13 btw"))  # another conversation, the same age: nothing new
    assert len(svc.ages.signals("X")) == 1
    send(svc, "c2", ("m2", "X", "ok fine im 16"))
    assert [s["age"] for s in svc.ages.signals("X")] == [16, 13]
    assert svc.ages.resolved("X").band == "13-15"  # the youngest minor band still decides


def test_a_retried_batch_records_nothing_new(svc):
    send(svc, "c1", ("m1", "X", "im 12"))
    send(svc, "c1", ("m1", "X", "im 12"))
    assert len(svc.ages.signals("X")) == 1


def test_the_platform_given_age_is_a_platform_signal(svc):
    send(svc, "c1", ("m1", "Y", "hello"), participants={"Y": {"age": 15}})
    send(svc, "c1", ("m2", "Y", "hello again"), participants={"Y": {"age": 15}})
    (signal,) = svc.ages.signals("Y")
    assert (signal["source"], signal["age"], signal["actor"]) == ("platform", 15, "apikey:platform")
    assert svc.ages.resolved("Y").band == "13-15"


def test_a_batch_that_fails_records_no_age(svc, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("the case store is down")

    monkeypatch.setattr(svc.conversations, "_news_for_case", broken)
    monkeypatch.setattr(svc.conversations, "_alert", broken)
    with pytest.raises(RuntimeError):  # the batch's transaction fails after the ages were recorded in it
        send(svc, "c1", *[(f"m{i}", "helper", t) for i, t in enumerate(GROOMING)], ("m9", "X", "im 13"))
    assert svc.ages.signals("X") == [] and svc.ages.band("X") == "unknown"
