"""Conversation risk from the stages of the grooming process, one message at a time.

Why stages and not keywords: analyses of offender chat logs describe grooming as a *process* — rapport and
flattery, collecting personal details, checking that the child is alone and unsupervised, secrecy and exclusivity,
moving to a private app, gifts, sexual topics and image requests, and meeting offline (O'Connell 2003; Black,
Wollis, Woodworth & Hancock 2015; Winters, Kaylor & Jeglic 2017; Lorenzo-Dus, Izura & Pérez-Tattam 2016; Kloess,
Hamilton-Giachritsis & Beech 2019). Every one of these acts also occurs in ordinary chat ("are you home alone?
dinner is in the fridge"); what marks grooming is one author showing *several* of them, moving from preparation
towards sexual content or a meeting, usually with a child. Financial sextortion is different: threat plus payment
demand is enough on its own (Thorn & NCMEC 2024).

How a participant's risk is computed (all constants below are module-level and documented, not fitted to data):

1. Each cue phrase from the ``grooming`` term list (``grooming.<stage>`` categories) found in the author's message
   adds to that stage's strength: ``strength = 1 - (1 - strength) * (1 - HIT_STRENGTH[severity])``, so repeats
   add with diminishing returns and strength stays below 1.
2. ``breadth = sum(STAGE_WEIGHT[stage] * strength)``. Secrecy, sexual content and threats weigh more than
   flattery because the literature treats them as the later, more specific stages.
3. Progression: if a goal stage (sexual, meeting) first appears *after* a preparation stage, ``+PROGRESSION``.
4. Age gap: if another participant is a minor (declared in text or profiled < 18) and this author is an adult or
   pursues risk assessment, secrecy, sexual or meeting stages, ``breadth *= AGE_GAP_FACTOR``.
5. ``risk = 1 - exp(-RATE * breadth)``; with fewer than ``MIN_STAGES_FOR_ALERT`` distinct stages the risk is
   capped at ``SINGLE_STAGE_CAP`` so that one or two cues can never raise an alert.
6. Sextortion floor: ``risk >= 0.5 + 0.5 * min(threat, max(payment, 0.8 * sexual))``.

By default the risk of step 5 is replaced by the probability of Safehold's shipped
:class:`~safehold.text.grooming.model.GroomingModel`, learned from real offender and benign conversations over the
stage strengths, the rule risk, age signals, behaviour (who escalates, how much they question) and hashed word
n-grams (``features``); ``rules_only=True`` keeps the rule risk (no data needed, every constant documented). A
participant without any stage cue is capped at ``SINGLE_STAGE_CAP`` under the model too, so that every alert at the
default threshold has a stage to show the reviewer (measured on validation data: one offender in 71 fewer, none of
the negatives changed). The sextortion floor applies either way. The stages stay the explanation of a flag,
whichever risk is in force: which stages an author went through and in which messages, and, with a model, which of
the author's messages weighed most (ids and positions only). The conversation score is the highest participant risk.

The state is bounded: per author it keeps stage strengths, where each stage first appeared, the ``MAX_EVIDENCE``
strongest messages per stage (and for the model), and a few counters, one of them the running sum of the model's
message scores; at most ``MAX_AUTHORS`` participants are tracked (the least risky is dropped). Messages longer than
``MAX_TEXT`` are scored on their first ``MAX_TEXT`` characters. The running sum belongs to the model that computed
it: a conversation scored under one model and continued under another mixes the two for its earlier messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime

from safehold.errors import SafeholdError
from safehold.text.grooming.ages import ages_in
from safehold.text.grooming.features import SHRINK, behaviour
from safehold.text.grooming.model import GroomingModel
from safehold.text.normalize import MAX_TEXT, normalize
from safehold.text.terms import Matcher, TermList, load_list

STAGES = (
    "rapport",
    "personal_info",
    "risk_assessment",
    "exclusivity",
    "platform_move",
    "gifts",
    "sexual",
    "meeting",
    "sextortion_threat",
    "sextortion_payment",
)
CATEGORY_PREFIX = "grooming."
HIT_STRENGTH = {1: 0.3, 2: 0.6, 3: 0.85}
STAGE_WEIGHT = {
    "rapport": 0.5,
    "personal_info": 0.7,
    "risk_assessment": 1.0,
    "exclusivity": 1.2,
    "platform_move": 0.8,
    "gifts": 0.8,
    "sexual": 1.2,
    "meeting": 1.0,
    "sextortion_threat": 1.5,
    "sextortion_payment": 1.2,
}
PREPARATION = frozenset(("rapport", "personal_info", "risk_assessment", "exclusivity", "platform_move", "gifts"))
GOALS = frozenset(("sexual", "meeting"))
PURSUIT = frozenset(("risk_assessment", "exclusivity", "sexual", "meeting"))
PROGRESSION = 0.5
AGE_GAP_FACTOR = 1.5
ADULT_AGE = 18
RATE = 0.45
MIN_STAGES_FOR_ALERT = 3
SINGLE_STAGE_CAP = 0.6
LEVELS = ((0.15, "none"), (0.4, "low"))  # below 0.15 none, below 0.4 low, below the alert threshold medium
MAX_EVIDENCE = 3
MAX_AUTHORS = 50
EXCERPT = 160
STATE_VERSION = 1

_STAGE_OF = {CATEGORY_PREFIX + s: s for s in STAGES}
_STAGE_SENTENCE = {
    "rapport": "{a} flattered or built trust with {b} (rapport)",
    "personal_info": "{a} asked {b} for personal details (personal info)",
    "risk_assessment": "{a} asked whether {b} is alone or supervised (risk assessment)",
    "exclusivity": "{a} pressed {b} for secrecy or exclusivity (exclusivity)",
    "platform_move": "{a} asked {b} to move to another app (platform move)",
    "gifts": "{a} offered {b} gifts or money (gifts)",
    "sexual": "{a} raised sexual topics or asked {b} for images (sexual)",
    "meeting": "{a} proposed meeting {b} offline (meeting)",
    "sextortion_threat": "{a} threatened to share images of {b} (sextortion threat)",
    "sextortion_payment": "{a} demanded payment from {b} (sextortion payment)",
}


@dataclass
class Message:
    author: str
    text: str
    id: str | None = None
    sent_at: datetime | None = None


@dataclass
class Profile:
    age: int | None = None  # the platform's declared or estimated age


@dataclass
class Assessment:
    score: float
    level: str
    alert: bool
    risk_author: str | None
    at_risk_author: str | None
    participants: dict[str, dict]
    stages: list[dict]
    explanation: list[str]
    messages: int

    def to_dict(self) -> dict:
        """The fields as they are: an assessment's containers are its own (built for it, evidence lists copied
        from the state), so the dict may be encoded later, in another thread, while the state moves on."""
        return {name: getattr(self, name) for name in _ASSESSMENT_FIELDS}


_ASSESSMENT_FIELDS = tuple(f.name for f in fields(Assessment))


@dataclass
class _Author:
    """What the scorer remembers about one participant (bounded; see the module docstring)."""

    messages: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, list[dict]] = field(default_factory=dict)
    age: int | None = None
    age_index: int | None = None
    profile_age: int | None = None
    text: float = 0.0  # running sum of the model's message scores
    questions: int = 0
    escalates: bool = False
    top: list[dict] = field(default_factory=list)  # the messages the model scored highest
    risk: float = 0.0
    # The model's score from the features that change only with stages and ages (not stored: derived).
    static: float | None = field(default=None, repr=False, compare=False)

    def known_age(self) -> tuple[int | None, str | None]:
        if self.profile_age is not None:
            return self.profile_age, "profile"
        if self.age is not None:
            return self.age, "declared"
        return None, None

    def to_dict(self) -> dict:
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self) if f.name != "static"}

    def to_json(self) -> dict:
        """:meth:`to_dict` without the copies, for an encoder to write at once (it shares this author's lists)."""
        return {name: getattr(self, name) for name in _AUTHOR_STORED}

    @classmethod
    def from_dict(cls, d: dict) -> _Author:
        return cls(
            messages=int(d["messages"]),
            stages={s: float(v) for s, v in d["stages"].items() if s in STAGE_WEIGHT},
            first={s: int(v) for s, v in d["first"].items() if s in STAGE_WEIGHT},
            evidence={s: list(v)[:MAX_EVIDENCE] for s, v in d["evidence"].items() if s in STAGE_WEIGHT},
            age=_opt_int(d.get("age")),
            age_index=_opt_int(d.get("age_index")),
            profile_age=_opt_int(d.get("profile_age")),
            text=float(d.get("text", 0.0)),
            questions=int(d.get("questions", 0)),
            escalates=bool(d.get("escalates", False)),
            top=list(d.get("top", ()))[:MAX_EVIDENCE],
            risk=float(d.get("risk", 0.0)),
        )


#: The fields of :class:`_Author` that are stored (``static`` is derived).
_AUTHOR_STORED = tuple(f.name for f in fields(_Author) if f.name != "static")


def _copy(value):
    """A copy of a JSON-shaped value (dicts, lists, scalars). ``dataclasses.asdict`` gives the same, but it inspects
    and deep-copies every leaf: on a chat message it was most of the CPU of storing the conversation's state."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _opt_int(v) -> int | None:
    return None if v is None else int(v)


class ConversationState:
    """Everything the scorer needs to continue a conversation; JSON-serialisable and bounded in size."""

    def __init__(self) -> None:
        self.messages = 0
        self.authors: dict[str, _Author] = {}

    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "messages": self.messages,
            "authors": {a: st.to_dict() for a, st in self.authors.items()},
        }

    def to_json(self) -> dict:
        """:meth:`to_dict` as the store's JSON encoder takes it: each author's own :meth:`_Author.to_json`, no
        copies (a conversation's state is written on every message; copying it was most of the cost)."""
        return {"version": STATE_VERSION, "messages": self.messages, "authors": self.authors}

    @classmethod
    def from_dict(cls, d: dict) -> ConversationState:
        try:
            if d.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported version {d.get('version')!r}")
            state = cls()
            state.messages = int(d["messages"])
            authors = d["authors"]
            if len(authors) > MAX_AUTHORS:
                raise ValueError(f"more than {MAX_AUTHORS} authors")
            state.authors = {str(a): _Author.from_dict(v) for a, v in authors.items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SafeholdError("grooming.invalid_state", f"Invalid conversation state: {exc}") from exc
        return state


def _strength_after(current: float, severity: int) -> float:
    return 1.0 - (1.0 - current) * (1.0 - HIT_STRENGTH.get(severity, HIT_STRENGTH[2]))


def _is_minor(author: _Author) -> bool:
    age, _ = author.known_age()
    return age is not None and age < ADULT_AGE


def author_features(state: ConversationState, name: str, *, shrink: float = SHRINK) -> dict[str, float]:
    """The behaviour features the model sees for one participant (also used to train it); see ``features``."""
    a = state.authors[name]
    age, _ = a.known_age()
    return behaviour(
        a.stages,
        _rule_risk(state, name),
        partner_minor=any(_is_minor(o) for n, o in state.authors.items() if n != name),
        age=age,
        adult_age=ADULT_AGE,
        escalates=a.escalates,
        questions=a.questions,
        messages=a.messages,
        shrink=shrink,
    )


def _breadth(state: ConversationState, name: str) -> float:
    a = state.authors[name]
    stages = a.stages
    breadth = sum(STAGE_WEIGHT[s] * v for s, v in stages.items())
    goal_first = [a.first[s] for s in GOALS if s in a.first]
    prep_first = [a.first[s] for s in PREPARATION if s in a.first]
    if goal_first and prep_first and min(goal_first) > min(prep_first):
        breadth += PROGRESSION
    if any(_is_minor(o) for n, o in state.authors.items() if n != name):
        age, _ = a.known_age()
        if (age is not None and age >= ADULT_AGE) or not PURSUIT.isdisjoint(stages):
            breadth *= AGE_GAP_FACTOR
    return breadth


def _sextortion_floor(stages: dict[str, float]) -> float:
    threat = stages.get("sextortion_threat", 0.0)
    if not threat:
        return 0.0
    return 0.5 + 0.5 * min(threat, max(stages.get("sextortion_payment", 0.0), 0.8 * stages.get("sexual", 0.0)))


def _rule_risk(state: ConversationState, name: str) -> float:
    stages = state.authors[name].stages
    if not stages:
        return 0.0
    risk = 1.0 - math.exp(-RATE * _breadth(state, name))
    if len(stages) < MIN_STAGES_FOR_ALERT:
        risk = min(risk, SINGLE_STAGE_CAP)
    return max(risk, _sextortion_floor(stages))


class GroomingScorer:
    """Scores conversations incrementally: ``state = new_state()``, then ``add(state, message)`` per message."""

    def __init__(
        self,
        *,
        cues: TermList | None = None,
        model: GroomingModel | None = None,
        rules_only: bool = False,
        alert_threshold: float = 0.7,
    ):
        """``model``: a trained model; none given, the shipped one. ``rules_only``: no model, the rule risk alone."""
        if not 0.0 < alert_threshold <= 1.0:
            raise SafeholdError("grooming.invalid_threshold", "alert_threshold must be in (0, 1].")
        terms = (cues or load_list("grooming")).terms
        self._matcher = Matcher(t for t in terms if t.category in _STAGE_OF)
        self.model = None if rules_only else (model or GroomingModel.default())
        self.alert_threshold = alert_threshold

    def new_state(self) -> ConversationState:
        return ConversationState()

    def assess(self, messages: Iterable[Message], profiles: dict[str, Profile] | None = None) -> Assessment:
        """Score a whole conversation at once (same result as adding its messages one by one)."""
        state = self.new_state()
        assessment = None
        for m in messages:
            assessment = self.add(state, m, profiles)
        return assessment or self._assessment(state)

    def add(self, state: ConversationState, message: Message, profiles: dict[str, Profile] | None = None) -> Assessment:
        """Take one message into ``state`` and return the conversation's assessment after it."""
        index = state.messages
        state.messages += 1
        author = self._author(state, message.author)
        author.messages += 1
        stale: set[str] = set()  # participants whose stages or age context changed
        for name, profile in (profiles or {}).items():
            # A profiled participant counts even before they write (a silent child is still in the conversation).
            if profile.age is not None and self._author(state, name).profile_age != profile.age:
                state.authors[name].profile_age = profile.age
                stale = set(state.authors)
        text = message.text[:MAX_TEXT]
        ages = ages_in(text)
        if ages and author.age != ages[-1]:
            author.age, author.age_index = ages[-1], index
            stale = set(state.authors)  # a minor's age changes every partner's age-gap factor
        norm = normalize(text)
        hits = self._matcher.find(norm, normalized=True) if norm else []
        if hits:
            self._record(state, author, message, index, text, hits)
            stale.add(message.author)
        if "?" in text:
            author.questions += 1
        if self.model is not None:
            if norm:
                score = self.model.message_score(norm)
                author.text += score
                _keep_top(author.top, score, message, index)
            for name in stale | {message.author}:
                state.authors[name].risk = self._model_risk(state, name, name in stale)
        else:  # the rule risk moves only with stages and ages
            for name in stale:
                state.authors[name].risk = _rule_risk(state, name)
        return self._assessment(state)

    def assessment(self, state: ConversationState) -> Assessment:
        """The conversation's assessment as it stands, without adding a message (e.g. when every message of a
        request was a retry)."""
        return self._assessment(state)

    def _author(self, state: ConversationState, name: str) -> _Author:
        author = state.authors.get(name)
        if author is None:
            if len(state.authors) >= MAX_AUTHORS:
                drop = min(state.authors, key=lambda n: (state.authors[n].risk, state.authors[n].messages))
                del state.authors[drop]
                for other in state.authors.values():  # their partner may have been the one dropped (age gap)
                    other.static = None
            author = state.authors[name] = _Author()
        return author

    @staticmethod
    def _record(state: ConversationState, author: _Author, message: Message, index: int, text: str, hits) -> None:
        per_stage: dict[str, list] = {}
        for hit in hits:
            per_stage.setdefault(_STAGE_OF[hit.term.category], []).append(hit.term)
        for stage, terms in per_stage.items():
            severity = max(t.severity for t in terms)
            author.stages[stage] = _strength_after(author.stages.get(stage, 0.0), severity)
            if stage in GOALS and GOALS.isdisjoint(author.first):
                # the first to raise sex or a meeting in this conversation is the one who escalates
                others = (o for o in state.authors.values() if o is not author)
                author.escalates = all(GOALS.isdisjoint(o.first) for o in others)
            author.first.setdefault(stage, index)
            evidence = author.evidence.setdefault(stage, [])
            item = {
                "message_id": message.id,
                "index": index,
                "excerpt": text[:EXCERPT],
                "cues": sorted({t.term for t in terms}),
                "severity": severity,
            }
            if len(evidence) < MAX_EVIDENCE:
                evidence.append(item)
            else:  # keep the strongest, earliest evidence
                weakest = min(range(len(evidence)), key=lambda i: (evidence[i]["severity"], -evidence[i]["index"]))
                if evidence[weakest]["severity"] < severity:
                    evidence[weakest] = item
                    evidence.sort(key=lambda e: e["index"])

    def _model_risk(self, state: ConversationState, name: str, stale: bool) -> float:
        a = state.authors[name]
        if stale or a.static is None:
            a.static = self.model.static_score(author_features(state, name, shrink=self.model.shrink))
        p = self.model.risk(a.static, a.text, a.questions, a.messages)
        if not a.stages:  # nothing to show a reviewer: the text alone never alerts at the default threshold
            p = min(p, SINGLE_STAGE_CAP)
        return max(p, _sextortion_floor(a.stages))

    def _assessment(self, state: ConversationState) -> Assessment:
        authors = state.authors
        participants = {name: _entry(a) for name, a in authors.items()}
        top = max(authors, key=lambda n: authors[n].risk, default=None)
        score = authors[top].risk if top is not None else 0.0
        level = self._level(score)
        if level == "none":
            return Assessment(round(score, 4), level, False, None, None, participants, [], [], state.messages)
        victim = self._victim(state, top)
        return Assessment(
            score=round(score, 4),
            level=level,
            alert=score >= self.alert_threshold,
            risk_author=top,
            at_risk_author=victim,
            participants=participants,
            stages=[
                {"stage": s, "strength": round(authors[top].stages[s], 4), "evidence": list(authors[top].evidence[s])}
                for s in STAGES
                if s in authors[top].stages
            ],
            explanation=self._explain(state, top, victim, self.model is not None),
            messages=state.messages,
        )

    def _level(self, score: float) -> str:
        if score >= self.alert_threshold:
            return "high"
        for bound, name in LEVELS:
            if score < bound:
                return name
        return "medium"

    @staticmethod
    def _victim(state: ConversationState, risk_author: str) -> str | None:
        """The other participant most likely at risk: a declared/profiled minor first, then the most active."""
        others = [(n, a) for n, a in state.authors.items() if n != risk_author]
        if not others:
            return None
        return max(others, key=lambda na: (_is_minor(na[1]), na[1].messages))[0]

    @staticmethod
    def _explain(state: ConversationState, top: str, victim: str | None, model: bool) -> list[str]:
        a = state.authors[top]
        other = victim if victim is not None else "the other participant"
        out = []
        for stage in STAGES:
            if stage in a.stages:
                out.append(_STAGE_SENTENCE[stage].format(a=top, b=other) + ", " + _refs(a.evidence[stage]))
        if model and a.top:
            out.append(f"{top} writes like the offenders the model learned from, most of all in " + _refs(a.top))
        if victim is not None and _is_minor(state.authors[victim]):
            v = state.authors[victim]
            age, source = v.known_age()
            where = "profile" if source == "profile" else f"declared in message #{v.age_index + 1}"
            own, own_source = a.known_age()
            who = f"{top} is an adult ({own}, {own_source})" if own is not None and own >= ADULT_AGE else None
            out.append(f"{victim} is a minor ({age}, {where})" + (f"; {who}" if who else "") + ": age gap")
        if _sextortion_floor(a.stages) >= 0.5:
            out.append(f"{top} threatened to share images: sextortion pattern")
        return out


_ORDER = {s: i for i, s in enumerate(STAGES)}


def _entry(a: _Author) -> dict:
    """One participant in an assessment."""
    age, source = a.known_age()
    stages = a.stages
    return {
        "risk": round(a.risk, 4),
        "stages": {s: round(stages[s], 4) for s in sorted(stages, key=_ORDER.__getitem__)} if stages else {},
        "age": age,
        "age_source": source,
        "messages": a.messages,
    }


def _ref(evidence: dict) -> str:
    return str(evidence["message_id"]) if evidence["message_id"] is not None else f"#{evidence['index'] + 1}"


def _refs(evidence: list[dict]) -> str:
    word = "message" if len(evidence) == 1 else "messages"
    return f"{word} " + ", ".join(_ref(e) for e in evidence)


def _keep_top(top: list[dict], score: float, message: Message, index: int) -> None:
    """Keep the ``MAX_EVIDENCE`` messages with the highest positive model score, in conversation order: their ids
    and positions only, no text (a message without a cue leaves no excerpt in the stored state)."""
    if score <= 0 or (len(top) >= MAX_EVIDENCE and score <= min(e["score"] for e in top)):
        return
    if len(top) >= MAX_EVIDENCE:
        top.remove(min(top, key=lambda e: e["score"]))
    top.append({"message_id": message.id, "index": index, "score": round(score, 4)})
    top.sort(key=lambda e: e["index"])
