import json

import pytest

from safehold.errors import SafeholdError
from safehold.text.grooming.scorer import (
    MAX_AUTHORS,
    MAX_EVIDENCE,
    ConversationState,
    GroomingScorer,
    Message,
    Profile,
)

GROOMING = [
    ("B", "hey, you are so mature for your age"),
    ("A", "thanks lol"),
    ("B", "what school do you go to?"),
    ("A", "lincoln middle"),
    ("B", "are you home alone right now?"),
    ("A", "yeah"),
    ("B", "don't tell your parents we talk, our little secret"),
    ("B", "add me on snap"),
    ("B", "send me a pic"),
    ("B", "we should meet up, i can pick you up after school"),
]


def msgs(lines, *, ids=True):
    return [Message(author=a, text=t, id=str(i + 1) if ids else None) for i, (a, t) in enumerate(lines)]


def run(scorer, lines, profiles=None):
    state = scorer.new_state()
    return [scorer.add(state, m, profiles) for m in msgs(lines)]


def test_risk_rises_as_stages_accumulate(scorer):
    scores = [a.score for a in run(scorer, GROOMING)]
    assert scores == sorted(scores)  # never falls as messages arrive
    assert scores[0] < 0.4 and scores[-1] >= scorer.alert_threshold
    final = run(scorer, GROOMING)[-1]
    assert final.alert and final.level == "high"
    assert final.risk_author == "B" and final.at_risk_author == "A"
    assert [s["stage"] for s in final.stages] == [
        "rapport",
        "personal_info",
        "risk_assessment",
        "exclusivity",
        "platform_move",
        "sexual",
        "meeting",
    ]


def test_explanation_names_messages_and_stages(scorer):
    final = run(scorer, GROOMING)[-1]
    text = "\n".join(final.explanation)
    assert "B asked whether A is alone or supervised (risk assessment), message 5" in text
    assert "(exclusivity), message 7" in text
    assert "(meeting), message 10" in text
    evidence = {s["stage"]: s["evidence"][0] for s in final.stages}
    assert evidence["risk_assessment"]["message_id"] == "5"
    assert evidence["risk_assessment"]["cues"] == ["are you home alone"]
    assert "alone" in evidence["risk_assessment"]["excerpt"]


def test_explanation_without_ids_uses_positions(scorer):
    final = scorer.assess(msgs(GROOMING, ids=False))
    assert any("message #5" in line for line in final.explanation)


def test_one_or_two_cues_never_alert(scorer):
    for lines in (
        [("B", "don't tell your parents, delete this chat, our little secret")],
        [("B", "are you home alone?"), ("B", "send nudes")],
    ):
        result = scorer.assess(msgs(lines))
        assert not result.alert and result.score <= 0.6


def test_adult_minor_pair_raises_risk(scorer):
    lines = [
        ("B", "are you alone?"),
        ("A", "yes"),
        ("B", "keep this between us ok"),
        ("B", "what are you wearing"),
    ]
    base = scorer.assess(msgs(lines))
    declared = scorer.assess(msgs([("A", "I'm 13")] + lines))
    profiled = scorer.assess(msgs(lines), profiles={"A": Profile(age=12), "B": Profile(age=40)})
    assert declared.score > base.score and profiled.score > base.score
    assert declared.participants["A"]["age"] == 13 and declared.participants["A"]["age_source"] == "declared"
    assert profiled.participants["B"]["age_source"] == "profile"
    assert any("A is a minor (12, profile); B is an adult (40, profile): age gap" in e for e in profiled.explanation)


def test_profiled_minor_counts_before_writing(scorer):
    lines = [("B", "are you alone?"), ("B", "keep this between us"), ("B", "what are you wearing")]
    silent = scorer.assess(msgs(lines), profiles={"A": Profile(age=12)})
    assert silent.score > scorer.assess(msgs(lines)).score
    assert silent.at_risk_author == "A" and silent.participants["A"]["messages"] == 0


@pytest.mark.parametrize(
    "lines",
    [
        [("A", "tengo 13 años"), ("B", "estás sola en casa?"), ("B", "es nuestro secreto"), ("B", "te recojo")],
        [("A", "tenho 13 anos"), ("B", "você está sozinha?"), ("B", "nosso segredo"), ("B", "eu te busco")],
        [("A", "j'ai 13 ans"), ("B", "tu es seule?"), ("B", "c'est notre secret"), ("B", "je viens te chercher")],
        [("A", "ich bin 13"), ("B", "bist du allein?"), ("B", "unser geheimnis"), ("B", "ich hol dich ab")],
    ],
)
def test_grooming_in_other_languages(scorer, lines):
    result = scorer.assess(msgs(lines))
    assert result.alert and result.risk_author == "B" and result.at_risk_author == "A"


@pytest.mark.parametrize(
    "lines",
    [
        [("M", "are you home alone? dinner is in the fridge"), ("K", "yes mom"), ("M", "love you, do your homework")],
        [("X", "trade you my dragon pet for your unicorn"), ("Y", "deal, add me on discord"), ("X", "gg")],
        [("S", "is the bike still for sale? send me a photo"), ("T", "yes"), ("S", "where can we meet? meet me at 5")],
        [("P", "you're so cute lol"), ("Q", "im 15 btw"), ("P", "same, do you have a girlfriend? movies friday?")],
        [("C", "great practice team, you are so special"), ("C", "parents please drive, meet at the field at 9")],
    ],
)
def test_hard_negatives_stay_low(scorer, lines):
    result = scorer.assess(msgs(lines))
    assert not result.alert and result.level in ("none", "low", "medium") and result.score < 0.55


def test_sextortion_is_high_on_its_own(scorer):
    result = scorer.assess(msgs([("X", "i have your pics"), ("X", "pay me or i will post them, you have 24 hours")]))
    assert result.alert and result.risk_author == "X"
    assert any("sextortion" in e for e in result.explanation)


@pytest.fixture(params=["scorer", "shipped"])
def either(request):
    """The rules alone and the default (shipped model): state, bounds and explanations hold for both."""
    return request.getfixturevalue(request.param)


def test_state_round_trip_keeps_scoring_identical(either):
    scorer = either
    half = len(GROOMING) // 2
    state = scorer.new_state()
    for m in msgs(GROOMING)[:half]:
        scorer.add(state, m)
    copy = ConversationState.from_dict(json.loads(json.dumps(state.to_dict())))
    for m in msgs(GROOMING)[half:]:
        a, b = scorer.add(state, m), scorer.add(copy, m)
        assert a.to_dict() == b.to_dict()
    assert state.to_dict() == copy.to_dict()


def test_state_stays_bounded(either):
    scorer = either
    state = scorer.new_state()
    for i in range(2000):
        scorer.add(state, Message("B", f"are you alone {i}? delete this chat", id=str(i)))
        scorer.add(state, Message(f"user{i}", "hello"))
    assert len(state.authors) <= MAX_AUTHORS
    assert "B" in state.authors  # the risky participant is the one kept
    assert all(len(ev) <= MAX_EVIDENCE for ev in state.authors["B"].evidence.values())
    assert len(state.authors["B"].top) <= MAX_EVIDENCE
    assert len(json.dumps(state.to_dict())) < 40_000


def test_invalid_state_is_a_clean_error():
    with pytest.raises(SafeholdError) as err:
        ConversationState.from_dict({"version": 1, "authors": {}})
    assert err.value.code == "grooming.invalid_state"


def test_empty_conversation_and_long_message(either):
    scorer = either
    assert scorer.assess([]).level == "none"
    result = scorer.assess([Message("A", "hi " * 60_000)])  # longer than MAX_TEXT: scored on the first part
    assert result.level == "none"


def test_invalid_threshold():
    with pytest.raises(SafeholdError):
        GroomingScorer(alert_threshold=0)


def test_shipped_model_keeps_the_stage_explanations(shipped):
    """The learned risk decides; the stages (and the messages the model weighed most) say why."""
    scores = [a.score for a in run(shipped, GROOMING)]
    final = run(shipped, GROOMING)[-1]
    assert final.alert and final.risk_author == "B" and final.at_risk_author == "A"
    assert scores[-1] > scores[0]
    assert "B asked whether A is alone or supervised (risk assessment), message 5" in final.explanation
    assert {s["stage"] for s in final.stages} >= {"risk_assessment", "exclusivity", "sexual", "meeting"}
    learned = next(line for line in final.explanation if line.startswith("B writes like the offenders"))
    ids = learned.split(" in messages ")[1].split(", ")
    assert ids and all(GROOMING[int(i) - 1][0] == "B" for i in ids)  # B's own messages, by id


def test_shipped_model_is_quiet_on_ordinary_chat(shipped):
    lines = [
        ("M", "are you coming to dinner tonight?"),
        ("K", "yes, after practice"),
        ("M", "great, bring the salad bowl back"),
        ("K", "ok see you at 7"),
    ] * 5
    result = shipped.assess(msgs(lines))
    assert not result.alert  # everyday plans ("see you at 7") can reach "medium" on the text alone, never an alert
