"""Stored conversations: incremental grooming/sextortion scoring, idempotent by message id, alerts open cases.

Every message here is synthetic and non-explicit; the cue phrases come from the bundled grooming list.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from safehold.cases.service import close
from safehold.errors import SafeholdError
from safehold.store.models import AuditRecord, Case, Conversation, ConversationMessage

GROOMING = [
    ("m1", "helper", "hey, saw your drawing on the art forum, you are really talented"),
    ("m2", "kid", "thx!! im 13"),
    ("m3", "helper", "wow you are so mature for your age"),
    ("m4", "helper", "are you home alone right now?"),
    ("m5", "helper", "don't tell your parents we talk ok"),
    ("m6", "helper", "add me on snap its easier"),
    ("m7", "helper", "we should meet up sometime"),
]


def msg(mid: str, author: str, text: str) -> dict:
    return {"id": mid, "author": author, "text": text}


def feed(svc, cid: str, messages=GROOMING, **extra) -> list[dict]:
    return [svc.conversations.add_messages("platform", cid, {**msg(*m), **extra}) for m in messages]


def signals(svc, case_id: int) -> list[dict]:
    return svc.cases.get(case_id)["signals"]


def audit_count(svc, action: str) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == action))


def test_risk_rises_message_by_message_with_explanations(svc):
    results = feed(svc, "c1")
    scores = [r["assessment"]["score"] for r in results]
    assert scores == sorted(scores) and scores[0] < 0.15 and scores[-1] > 0.85
    # the shipped model alerts once the helper checks whether the 13-year-old is alone, or on the secrecy request
    assert [r["assessment"]["alert"] for r in results].index(True) in (3, 4)
    assert all(r["accepted"] == 1 and r["duplicates"] == 0 for r in results)
    last = results[-1]["assessment"]
    assert last["risk_author"] == "helper" and last["at_risk_author"] == "kid" and last["level"] == "high"
    text = "\n".join(last["explanation"])
    assert "secrecy" in text and "m5" in text and "meeting" in text and "kid is a minor (13" in text
    stored = svc.conversations.get("c1")
    assert stored["messages"] == 7 and stored["score"] == last["score"] and stored["assessment"] == last


def test_only_the_bounded_state_is_stored(svc):
    feed(svc, "c1")
    with svc.db.session() as s:
        row = s.scalar(select(Conversation).where(Conversation.external_id == "c1"))
        ids = s.scalars(select(ConversationMessage.message_id).where(ConversationMessage.conversation_id == row.id))
        assert sorted(ids) == [m[0] for m in GROOMING]
    stored = repr(row.state)
    # Messages without a cue leave no trace; evidence excerpts are kept for the reviewer.
    assert "art forum" not in stored and "thx" not in stored and "home alone" in stored


def test_an_alert_opens_exactly_one_case_in_the_text_queue(svc):
    results = feed(svc, "c1")
    first = [r["assessment"]["alert"] for r in results].index(True)
    assert [r["case"] is not None for r in results] == [False] * first + [True] * (len(results) - first)
    assert results[first]["case"]["created"] is True and results[first + 1]["case"]["created"] is False
    cases = svc.cases.list(queue="text")
    assert cases["total"] == 1 and svc.cases.list(status="all")["total"] == 1
    case = svc.cases.get(cases["cases"][0]["id"])
    assert case["source"] == "grooming" and case["content_id"] == "conversation:c1" and case["account_id"] == "helper"
    assert case["items"][0]["media_type"] == "text" and "alone or supervised" in case["items"][0]["text"]
    sigs = case["signals"]
    # opened at the first alert; after it, each message that brought a new stage (secrecy, a platform move, a
    # meeting) or raised the risk by at least 0.05 added a signal
    news = [
        i
        for i in range(first + 1, len(results))
        if set(results[i]["assessment"]["participants"]["helper"]["stages"])
        - set(results[i - 1]["assessment"]["participants"]["helper"]["stages"])
        or results[i]["assessment"]["score"] >= results[i - 1]["assessment"]["score"] + 0.05
    ]
    assert len(sigs) == 1 + len(news) and {s["category"] for s in sigs} == {"grooming"}
    assert sigs[-1]["value"] == "c1" and sigs[-1]["signal_type"] == "conversation"
    assert sigs[-1]["detail"]["risk_author"] == "helper" and sigs[-1]["detail"]["messages"] == 7
    assert any(st["stage"] == "meeting" and st["evidence"] for st in sigs[-1]["detail"]["stages"])
    assert audit_count(svc, "conversation.alert") == len(sigs)
    # A message that changes nothing for the risk author adds nothing to the case.
    r = svc.conversations.add_messages("platform", "c1", msg("m8", "kid", "ok"))
    assert r["case"]["id"] == case["id"] and len(signals(svc, case["id"])) == len(sigs)


def test_a_retried_message_is_a_duplicate_and_changes_nothing(svc):
    feed(svc, "c1")
    before = svc.conversations.get("c1")
    case_id = before["case"]["id"]
    sent = len(signals(svc, case_id))
    r = svc.conversations.add_messages("platform", "c1", msg("m5", "helper", "don't tell your parents we talk ok"))
    assert r["accepted"] == 0 and r["duplicates"] == 1
    assert r["assessment"] == before["assessment"] and r["case"]["id"] == case_id and r["case"]["created"] is False
    after = svc.conversations.get("c1")
    assert after["messages"] == 7 and after["updated_at"] == before["updated_at"]
    assert len(signals(svc, case_id)) == sent
    # A batch with old and new ids scores only the new ones (and a repeat inside the batch once).
    r = svc.conversations.add_messages(
        "platform", "c1", {"messages": [msg(*GROOMING[0]), msg("m9", "kid", "ok"), msg("m9", "kid", "ok")]}
    )
    assert (r["accepted"], r["duplicates"], r["assessment"]["messages"]) == (1, 2, 8)


def test_concurrent_posts_to_one_conversation_lose_no_message(svc):
    threads, per_thread = 6, 8
    totals = {"accepted": 0, "duplicates": 0}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def post(t: int) -> None:
        try:
            for i in range(per_thread):
                # every thread also retries a shared id: it is scored exactly once
                body = {"messages": [msg(f"t{t}-{i}", f"user{t}", "how was school today"), msg("shared", "x", "hi")]}
                r = svc.conversations.add_messages("platform", "busy", body)
                with lock:
                    totals["accepted"] += r["accepted"]
                    totals["duplicates"] += r["duplicates"]
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=post, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    expected = threads * per_thread + 1
    assert totals == {"accepted": expected, "duplicates": threads * per_thread - 1}
    stored = svc.conversations.get("busy")
    assert stored["messages"] == expected
    assert sum(p["messages"] for p in stored["assessment"]["participants"].values()) == expected
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConversationMessage)) == expected
        assert s.scalar(select(func.count()).select_from(Conversation)) == 1


def test_a_closed_case_and_a_new_alert_open_a_new_case(svc):
    first = feed(svc, "c1")[-1]["case"]
    with svc.db.session() as s:
        close(s.get(Case, first["id"]))
    # Chat that adds no new evidence does not reopen anything.
    r = svc.conversations.add_messages("platform", "c1", msg("m8", "helper", "haha ok"))
    assert r["assessment"]["alert"] and r["case"] == {**first, "status": "closed", "created": False}
    # New evidence (a gift offer: a stage not seen before) opens a new case for the same conversation.
    r = svc.conversations.add_messages("platform", "c1", msg("m9", "helper", "i can buy you a new phone"))
    assert r["case"]["created"] is True and r["case"]["id"] != first["id"] and r["case"]["status"] == "open"
    assert svc.conversations.get("c1")["case"]["id"] == r["case"]["id"]
    assert svc.cases.list(queue="text")["total"] == 1 and svc.cases.list(status="all")["total"] == 2


def test_profile_ages_raise_risk(svc):
    lines = [
        ("p1", "helper", "wow you are so mature for your age"),
        ("p2", "kid", "lol thanks"),
        ("p3", "helper", "are you home alone right now?"),
    ]
    plain = feed(svc, "plain", lines)[-1]["assessment"]
    ages = {"participants": {"kid": {"age": 12}, "helper": {"age": 34}}}
    profiled = feed(svc, "profiled", lines, **ages)[-1]["assessment"]
    assert profiled["score"] > plain["score"]
    assert profiled["participants"]["kid"]["age"] == 12 and profiled["participants"]["kid"]["age_source"] == "profile"
    assert any("age gap" in line for line in profiled["explanation"])
    assert not any("age gap" in line for line in plain["explanation"])


def test_sextortion_goes_to_the_case_as_sextortion(svc):
    lines = [
        ("s1", "stranger", "i have your pics"),
        ("s2", "stranger", "i will send it to your friends"),
        ("s3", "stranger", "if you don't pay"),
    ]
    r = feed(svc, "sx", lines)[-1]
    assert r["assessment"]["alert"] and r["case"]["created"]
    assert {s["category"] for s in signals(svc, r["case"]["id"])} == {"sextortion"}
    assert any("sextortion" in line for line in r["assessment"]["explanation"])


def test_the_scorer_in_force_is_used(svc):
    svc.terms.set_enabled("grooming", False, "admin")  # no grooming cues at all
    r = feed(svc, "c1")[-1]
    # no stage to explain an alert: the learned text score alone stays below the threshold
    assert not r["assessment"]["alert"] and not r["assessment"]["stages"] and r["case"] is None
    svc.terms.set_enabled("grooming", True, "admin")
    r = svc.conversations.add_messages("platform", "c1", msg("m8", "helper", "don't tell anyone about us"))
    assert r["assessment"]["participants"]["helper"]["stages"]


def test_list_get_and_forget(svc):
    feed(svc, "c1")
    feed(svc, "quiet", [("q1", "a", "see you at practice"), ("q2", "b", "ok")])
    listed = svc.conversations.list()
    assert [c["conversation_id"] for c in listed] == ["c1", "quiet"]
    assert [c["conversation_id"] for c in svc.conversations.list(alert=True)] == ["c1"]
    assert [c["conversation_id"] for c in svc.conversations.list(alert=False)] == ["quiet"]
    assert svc.conversations.list(min_score=0.5) == [listed[0]] and svc.conversations.list(offset=1) == [listed[1]]
    assert "assessment" not in listed[0] and listed[0]["case"]["status"] == "open"
    case_id = listed[0]["case"]["id"]
    gone = svc.conversations.forget("c1", "admin")
    assert gone == {"conversation_id": "c1", "forgotten": True, "messages": 7}
    with pytest.raises(SafeholdError) as e:
        svc.conversations.get("c1")
    assert e.value.code == "conversation.not_found" and e.value.status == 404
    assert audit_count(svc, "conversation.forget") == 1
    assert svc.cases.get(case_id)["status"] == "open"  # the case stays
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConversationMessage)) == 2
    # Forgotten ids are new again; the conversation rejoins its open case.
    r = feed(svc, "c1")[-1]
    assert r["accepted"] == 1 and r["case"]["id"] == case_id
    with pytest.raises(SafeholdError) as e:
        svc.conversations.forget("nope", "admin")
    assert e.value.code == "conversation.not_found"


def test_prune_forgets_idle_conversations_without_an_open_case(svc):
    feed(svc, "open-case")
    closed = feed(svc, "closed-case")[-1]["case"]
    with svc.db.session() as s:
        close(s.get(Case, closed["id"]))
    feed(svc, "no-case", [("n1", "a", "hello there")])
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert svc.conversations.prune(soon) == 0  # nothing idle long enough
    svc.conversations._pruned_at = None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=svc.settings.conversation_idle_days + 1)
    assert svc.conversations.prune(later) == 2
    assert [c["conversation_id"] for c in svc.conversations.list()] == ["open-case"]
    assert svc.conversations.prune(later + dt.timedelta(minutes=5)) == 0  # at most once an hour
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConversationMessage)) == len(GROOMING)
    assert audit_count(svc, "conversation.prune") == 1


@pytest.mark.parametrize(
    ("cid", "body", "code"),
    [
        ("c", {}, "request.invalid"),
        ("c", {"messages": []}, "request.invalid"),
        ("c", {"messages": [msg(f"m{i}", "a", "hi") for i in range(101)]}, "request.invalid"),
        ("c", {"author": "a", "text": "hi"}, "request.invalid"),  # no id
        ("c", msg("", "a", "hi"), "request.invalid"),
        ("c", msg("mé", "a", "hi"), "request.invalid"),
        ("c", msg("m\n1", "a", "hi"), "request.invalid"),
        ("c", msg("m" * 129, "a", "hi"), "request.invalid"),
        ("c", msg("m1", "", "hi"), "request.invalid"),
        ("c", msg("m1", "a" * 129, "hi"), "request.invalid"),
        ("c", {**msg("m1", "a", "hi"), "sent_at": "yesterday"}, "request.invalid"),
        ("c", {**msg("m1", "a", "hi"), "colour": "red"}, "request.invalid"),
        ("c", {**msg("m1", "a", "hi"), "participants": {"a": {"age": 131}}}, "request.invalid"),
        ("c", {**msg("m1", "a", "hi"), "participants": {"a": {"age": "old"}}}, "request.invalid"),
        ("c", {"messages": [msg("m1", "a", 5)]}, "request.invalid"),
        ("c", msg("m1", "a", "x" * 100_001), "conversation.text_too_long"),
        ("", msg("m1", "a", "hi"), "request.invalid"),
        ("c" * 129, msg("m1", "a", "hi"), "request.invalid"),
        ("c\x00", msg("m1", "a", "hi"), "request.invalid"),
        ("c", ["not", "an", "object"], "request.invalid"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(svc, cid, body, code):
    with pytest.raises(SafeholdError) as e:
        svc.conversations.add_messages("platform", cid, body)
    assert e.value.code == code and e.value.status == 422
    if code == "request.invalid":
        assert e.value.detail["errors"]
    assert svc.conversations.list() == []


def test_accepted_limits(svc):
    r = svc.conversations.add_messages("platform", "ü" * 128, msg("m" * 128, "a" * 128, "x" * 100_000))
    assert r["accepted"] == 1
    r = svc.conversations.add_messages(
        "platform", "big", {"messages": [msg(f"m{i}", "a", "hi") for i in range(100)], "participants": {}}
    )
    assert r["accepted"] == 100
    long_id = "z" * 128  # too long for a case's content id column: the case's content id is its hash
    case = svc.cases.get(feed(svc, long_id)[-1]["case"]["id"])
    assert case["content_id"].startswith("conversation:sha256:") and case["signals"][0]["value"] == long_id
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        with pytest.raises(SafeholdError) as e:
            svc.conversations.list(**bad)
        assert e.value.code == "request.invalid_limit"


ADULTS_ONLY = [(mid, author, text.replace("im 13", "im 34")) for mid, author, text in GROOMING]


def test_a_high_alert_naming_a_minor_is_a_p0_case_with_the_shortest_sla(svc):
    """A 13-year-old at risk of contact abuse is the most urgent case the system has (was: P2, 24 h)."""
    case_id = feed(svc, "c1")[-1]["case"]["id"]
    case = svc.cases.get(case_id)
    opened, due = (dt.datetime.fromisoformat(case[k]) for k in ("opened_at", "due_at"))
    assert case["band"] == "P0" and due - opened == dt.timedelta(hours=1)
    assert case["signals"][0]["detail"]["minor_at_risk"] == {"participant": "kid", "age": 13, "age_source": "declared"}
    assert "minor_at_risk" in case["reasons"][0] and "age 13" in case["reasons"][0]
    assert "reasons" in case["history"][0]["detail"]  # the audit record says why, as it was then
    # The same conversation between adults is ranked by its score alone.
    adult = svc.cases.get(feed(svc, "c2", ADULTS_ONLY)[-1]["case"]["id"])
    assert adult["band"] not in ("P0", "P1") and not any("minor_at_risk" in r for r in adult["reasons"])
    # A participant the platform profiles as a minor counts the same as an age stated in the chat.
    profiled = feed(svc, "c3", ADULTS_ONLY, participants={"kid": {"age": 15}})[-1]["case"]
    assert profiled["band"] == "P0"


def test_a_child_saying_they_are_asked_for_images_raises_risk_and_urgency(svc):
    """A disclosure ("he keeps asking me for pictures") is the victim's own voice: alert, P0, explained."""
    chat = [
        ("d1", "adult", "hey how was school today"),
        ("d2", "kid", "ok i guess"),
        ("d3", "kid", "someone online keeps asking me for pictures and i dont know what to do"),
    ]
    results = feed(svc, "d", chat, participants={"kid": {"age": 13}})
    before, after = results[1]["assessment"], results[2]["assessment"]
    assert not before["alert"]
    assert after["alert"] and after["level"] == "high" and after["score"] >= svc.settings.grooming_alert_threshold
    assert "kid said they are being threatened" in after["explanation"][0] and "d3" in after["explanation"][0]
    case = svc.cases.get(results[2]["case"]["id"])
    assert case["band"] == "P0"
    disclosure = case["signals"][0]["detail"]["minor_disclosure"]
    assert disclosure["author"] == "kid" and disclosure["message_id"] == "d3" and disclosure["age"] == 13
    assert any("minor_disclosure" in r for r in case["reasons"])
    # Kept next to the scorer's state (phrases and ids, never the message), so a later message still carries it.
    later = feed(svc, "d", [("d4", "adult", "what are you up to")])[0]["assessment"]
    assert later["alert"] and "d3" in later["explanation"][0]
    assert svc.conversations.get("d")["assessment"] == later  # reading says the same
    with svc.db.session() as s:
        stored = s.scalars(select(Conversation).where(Conversation.external_id == "d")).one().state
    assert stored["disclosures"] == [{"author": "kid", "message_id": "d3", "phrases": ["asking me for pictures"]}]
    assert "dont know" not in str(stored)


def test_an_adults_disclosure_opens_a_case_but_does_not_jump_the_queue(svc):
    results = feed(svc, "g", [("g1", "ann", "my aunt keeps asking me for pictures of the baby")])
    case = svc.cases.get(results[0]["case"]["id"])
    assert results[0]["assessment"]["alert"] and case["band"] != "P0"
    assert case["signals"][0]["detail"]["disclosure"]["minor"] is False


def test_ordinary_chat_has_no_disclosure(svc):
    results = feed(svc, "e", [("e1", "a", "can you send me the pictures from the trip"), ("e2", "b", "sure")])
    assert not results[-1]["assessment"]["alert"]


def test_being_moved_is_not_a_disclosure(svc):
    """ "Touched me" also means "moved me": only specific touch phrases are disclosures."""
    results = feed(svc, "f", [("f1", "a", "your song really touched me"), ("f2", "b", "me tocó la lotería")])
    assert not results[-1]["assessment"]["alert"]
