"""The contact policy (Principle 7): may this sender reach this recipient this way — allow, friction or block.

A platform asks before it delivers a message, a friend request, a follow, a call or media, and before it suggests
an account to another (``discover``). The answer comes from an ordered list of **rules** (first match wins) over
the two accounts' age bands, what connects them (mutual contacts, a prior conversation, whether the recipient
follows the sender), the sender's account age and the sender's risk (open grooming cases, open user-report cases).
Each rule names its outcome, a prompt key (the safety message the platform shows) and a reason.

This module is pure: a validated :class:`Policy` and the facts of one request in, a :class:`Decision` out. Storage,
hot reload and the band and risk caches are :mod:`safehold.safety.contact_service`.

**The default policy** (:data:`DEFAULT_POLICY`) follows the public guidance for children's accounts:

- UK ICO, *Age Appropriate Design Code* (2020), standards 7 (default settings "high privacy") and 8
  (data sharing), and 12 (profiling off by default): a child's account is not exposed to strangers by default.
- Ofcom, *Protecting people from illegal harms online: Illegal content Codes of Practice for user-to-user services*
  (December 2024), measures on child users' default settings (ICU F1/F2): children are not included in network
  expansion prompts ("people you may know") shown to others, do not appear in other users' connection lists, and
  accounts they are not connected to cannot send them direct messages.
- The teen-account defaults of the large platforms (Instagram Teen Accounts, 2024; TikTok's under-16 settings,
  2021): direct messages from people a teen does not follow or is not connected to are off for under-16s; 16-17s
  are reachable, with safety notices.

So by default: an adult (or unknown-age) stranger cannot message, call, send media to or friend-request an under-16
(``block``), and meets a safety prompt toward a 16-17 (``friction``); may not follow an under-13 and meets a prompt
following a 13-17; never has a minor suggested to them (``discover``); a sender with an open grooming case is
blocked toward every minor and every account of unknown age, and one with three or more open user reports toward
every minor; a sender with an **age conflict** (an adult signal from the platform, a declared birth date or
assurance, against a younger claim — "i'm 14 too" — see :mod:`safehold.safety.ages`) is banded ``adult`` as a
sender and is blocked from every minor they are not connected to, 16-17s included (stricter than an adult
stranger: adults posing as peers is a documented grooming tactic — the NSPCC's guidance on grooming notes that
groomers may pretend to be younger than they are; so do Europol's IOCTA reports); a new adult account (under 7
days) cannot reach a 16-17 stranger at all. Minors reach minors freely.
An account of **unknown** age is treated cautiously on both sides: as an adult when it sends (an unknown sender
could be an adult) and, when it receives, as someone who may be a child (friction on messages, calls and media from
strangers, with the neutral prompt ``contact.friction.unknown_age``, which claims nothing about their age).

The sender's band is the one the age book resolves for the account *as a sender* (the oldest credible band), the
recipient's the protective one (the youngest credible band): an adult cannot become a child's peer by saying so.

A **connected** pair — the recipient follows the sender, they have talked before, or they share at least
``connection.min_mutual_contacts`` (default 3) contacts — has the outcome of a rule marked ``relax_when_connected``
relaxed one step (block → friction, friction → allow); the risk rules, the age-conflict rule and the
discoverability rule are not relaxed (a groomer's usual first step is to become "connected").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from safehold.agebands import BANDS, MINOR_BANDS

KINDS = ("message", "friend_request", "follow", "call", "media", "discover")
OUTCOMES = ("allow", "friction", "block")
#: The prompt keys the prompts catalogue (``safehold.safety.prompts``) has texts for. ``contact.friction.stranger``
#: is shown to the minor (about a stranger reaching them), ``contact.friction.sender`` to the sender before they
#: reach a minor, ``contact.friction.unknown_age`` to the sender before they reach an account of unknown age (it
#: says nothing about the recipient's age: nobody knows it), ``contact.blocked`` to the sender whose contact was
#: refused.
PROMPTS = ("contact.friction.stranger", "contact.friction.sender", "contact.friction.unknown_age", "contact.blocked")
#: One step more permissive, for a connected pair (allow stays allow).
RELAXED = {"block": "friction", "friction": "allow", "allow": "allow"}
MAX_RULES = 200

Band = Literal[BANDS]  # type: ignore[valid-type]
Kind = Literal[KINDS]  # type: ignore[valid-type]
Outcome = Literal[OUTCOMES]
Prompt = Literal[PROMPTS]
RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=300, strip_whitespace=True)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class Rule(BaseModel):
    """One rule: every condition given must hold (an omitted one holds always); the first rule that matches
    decides."""

    model_config = ConfigDict(extra="forbid")

    name: RuleName = Field(description="Stable name, returned as the decision's ``rule``.")
    sender: list[Band] | None = Field(None, max_length=5, description="Sender's band is one of these.")
    recipient: list[Band] | None = Field(None, max_length=5, description="Recipient's band is one of these.")
    kinds: list[Kind] | None = Field(None, max_length=6, description="The interaction is one of these.")
    connected: bool | None = Field(None, description="The pair is (true) or is not (false) connected.")
    prior_conversation: bool | None = None
    recipient_follows_sender: bool | None = None
    min_mutual_contacts: Count | None = None
    max_mutual_contacts: Count | None = None
    sender_account_days_below: Count | None = Field(
        None, description="The sender's account is younger than this many days (never holds when its age is unknown)."
    )
    min_open_grooming_cases: Count | None = Field(None, description="The sender has at least this many.")
    min_open_reports: Count | None = Field(None, description="Open user-report cases about the sender, at least.")
    sender_age_conflict: bool | None = Field(
        None, description="The sender has (true) or has not (false) an age conflict: a younger claim against an "
        "adult signal (safehold.safety.ages).",
    )  # fmt: skip
    outcome: Outcome
    prompt: Prompt | None = Field(None, description="Prompt key; a block without one gets contact.blocked.")
    reason: Reason
    relax_when_connected: bool = Field(False, description="A connected pair gets the outcome one step relaxed.")
    relaxed_prompt: Prompt | None = Field(None, description="Prompt key of the relaxed outcome when it is friction.")

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.outcome == "allow" and self.prompt is not None:
            raise ValueError(f"rule {self.name!r}: an allow has no prompt")
        if self.outcome == "friction" and self.prompt is None:
            raise ValueError(f"rule {self.name!r}: a friction needs a prompt (one of {', '.join(PROMPTS)})")
        if self.outcome == "block" and self.prompt is None:
            self.prompt = "contact.blocked"
        if self.relax_when_connected and self.connected is not None:
            raise ValueError(f"rule {self.name!r}: relax_when_connected with a connected condition never changes")
        relaxed = RELAXED[self.outcome] if self.relax_when_connected else None
        if relaxed == "friction" and self.relaxed_prompt is None:
            raise ValueError(f"rule {self.name!r}: relaxing a block to friction needs a relaxed_prompt")
        if relaxed != "friction" and self.relaxed_prompt is not None:
            raise ValueError(f"rule {self.name!r}: relaxed_prompt only goes with a block relaxed to friction")
        low, high = self.min_mutual_contacts, self.max_mutual_contacts
        if low is not None and high is not None and low > high:
            raise ValueError(f"rule {self.name!r}: min_mutual_contacts is above max_mutual_contacts")
        for field in ("sender", "recipient", "kinds"):
            values = getattr(self, field)
            if values is not None and not values:
                raise ValueError(f"rule {self.name!r}: {field} is empty (omit it to mean any)")
        return self


class Connection(BaseModel):
    """What makes a pair *connected* (any one of these)."""

    model_config = ConfigDict(extra="forbid")

    min_mutual_contacts: Count = Field(3, description="Shared contacts that make a pair connected (0: never).")
    prior_conversation: bool = Field(True, description="Having talked before connects.")
    recipient_follows_sender: bool = Field(True, description="The recipient following the sender connects.")


class Fallback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome = "allow"
    prompt: Prompt | None = None
    reason: Reason = "no rule applies"


class Policy(BaseModel):
    """An operator's contact policy: rules in order, the first match wins; ``fallback`` when none does."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", max_length=2000)
    connection: Connection = Field(default_factory=Connection)
    rules: list[Rule] = Field(max_length=MAX_RULES)
    fallback: Fallback = Field(default_factory=Fallback)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}: names must be unique")
            seen.add(rule.name)
        if self.fallback.outcome == "friction" and self.fallback.prompt is None:
            raise ValueError("a friction fallback needs a prompt")
        return self


@dataclass(frozen=True, slots=True)
class Relationship:
    mutual_contacts: int = 0
    prior_conversation: bool = False
    recipient_follows_sender: bool = False


@dataclass(frozen=True, slots=True)
class Risk:
    """The sender's open cases that bear on contact with children."""

    grooming: int = 0
    reports: int = 0


NO_RELATIONSHIP = Relationship()
NO_RISK = Risk()


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str
    reason: str
    rule: str | None
    prompt: str | None
    relaxed: bool = False


class CompiledPolicy:
    """A validated policy ready for many checks: per (sender band, recipient band, kind), the rules that can match
    at all, so a check only tests the relationship, age and risk conditions of a few rules."""

    __slots__ = ("connection", "policy", "_candidates", "_fallback")

    def __init__(self, policy: Policy):
        self.policy = policy
        self.connection = policy.connection
        self._candidates: dict[tuple[str, str, str], tuple[Rule, ...]] = {
            (s, r, k): tuple(
                rule
                for rule in policy.rules
                if (rule.sender is None or s in rule.sender)
                and (rule.recipient is None or r in rule.recipient)
                and (rule.kinds is None or k in rule.kinds)
            )
            for s in BANDS
            for r in BANDS
            for k in KINDS
        }
        fb = policy.fallback
        self._fallback = Decision(fb.outcome, fb.reason, None, fb.prompt)

    def connected(self, rel: Relationship) -> bool:
        c = self.connection
        return (
            (c.prior_conversation and rel.prior_conversation)
            or (c.recipient_follows_sender and rel.recipient_follows_sender)
            or (c.min_mutual_contacts > 0 and rel.mutual_contacts >= c.min_mutual_contacts)
        )

    def decide(
        self,
        sender_band: str,
        recipient_band: str,
        kind: str,
        rel: Relationship = NO_RELATIONSHIP,
        sender_age_days: float | None = None,
        risk: Risk = NO_RISK,
        sender_age_conflict: bool = False,
    ) -> Decision:
        """The first matching rule's outcome (relaxed one step for a connected pair when the rule says so).
        ``sender_band`` is the sender's band *as a sender* (``ResolvedAge.sender_band``), ``recipient_band`` the
        recipient's protective band."""
        connected = self.connected(rel)
        for rule in self._candidates[(sender_band, recipient_band, kind)]:
            if not _holds(rule, rel, connected, sender_age_days, risk, sender_age_conflict):
                continue
            if rule.relax_when_connected and connected and rule.outcome != "allow":
                relaxed = RELAXED[rule.outcome]
                prompt = rule.relaxed_prompt if relaxed == "friction" else None
                return Decision(relaxed, f"{rule.reason} (relaxed: connected)", rule.name, prompt, True)
            return Decision(rule.outcome, rule.reason, rule.name, rule.prompt)
        return self._fallback


def _holds(rule: Rule, rel: Relationship, connected: bool, age_days: float | None, risk: Risk, conflict: bool) -> bool:
    if rule.sender_age_conflict is not None and rule.sender_age_conflict != conflict:
        return False
    if rule.connected is not None and rule.connected != connected:
        return False
    if rule.prior_conversation is not None and rule.prior_conversation != rel.prior_conversation:
        return False
    if rule.recipient_follows_sender is not None and rule.recipient_follows_sender != rel.recipient_follows_sender:
        return False
    if rule.min_mutual_contacts is not None and rel.mutual_contacts < rule.min_mutual_contacts:
        return False
    if rule.max_mutual_contacts is not None and rel.mutual_contacts > rule.max_mutual_contacts:
        return False
    if rule.sender_account_days_below is not None and (age_days is None or age_days >= rule.sender_account_days_below):
        return False
    if rule.min_open_grooming_cases is not None and risk.grooming < rule.min_open_grooming_cases:
        return False
    return rule.min_open_reports is None or risk.reports >= rule.min_open_reports


def account_age_days(created_at: dt.datetime | None, now: dt.datetime) -> float | None:
    """Days since ``created_at`` (a naive time is UTC), or None when it is not known."""
    if created_at is None:
        return None
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=dt.UTC)
    return max(0.0, (now - created_at).total_seconds() / 86400)


_CONDITION_WORDS = {
    "connected": "connected = {}",
    "prior_conversation": "prior conversation = {}",
    "recipient_follows_sender": "recipient follows sender = {}",
    "min_mutual_contacts": "mutual contacts ≥ {}",
    "max_mutual_contacts": "mutual contacts ≤ {}",
    "sender_account_days_below": "sender's account < {} days old",
    "min_open_grooming_cases": "sender's open grooming cases ≥ {}",
    "min_open_reports": "sender's open user reports ≥ {}",
    "sender_age_conflict": "sender's age conflict = {}",
}


def conditions_text(rule: dict) -> str:
    """A rule's (as JSON) relationship, account-age and risk conditions in words, for the CLI and the console."""
    parts = [text.format(str(rule[k]).lower()) for k, text in _CONDITION_WORDS.items() if rule.get(k) is not None]
    return "; ".join(parts) or "-"


_ADULTISH = ["adult", "unknown"]  # an unknown sender may be an adult
_UNDER16 = ["under13", "13-15"]
_CONTACT = ["message", "friend_request", "call", "media"]

#: The built-in policy (see the module docstring for its sources); ``safehold contact policy reset`` restores it.
DEFAULT_POLICY: dict = {
    "description": "Safehold's default: the ICO Age Appropriate Design Code, Ofcom's illegal-harms codes for "
    "child users and the large platforms' teen-account defaults (no stranger DMs to under-16s, friction for "
    "16-17s, minors not discoverable by adult strangers).",
    "connection": {"min_mutual_contacts": 3, "prior_conversation": True, "recipient_follows_sender": True},
    "rules": [
        {
            "name": "risk.grooming",
            "min_open_grooming_cases": 1,
            "recipient": [*MINOR_BANDS, "unknown"],
            "outcome": "block",
            "reason": "the sender has an open grooming case",
        },
        {
            "name": "risk.reports",
            "min_open_reports": 3,
            "recipient": list(MINOR_BANDS),
            "outcome": "block",
            "reason": "the sender has three or more open user reports",
        },
        {
            "name": "age_conflict.minor_contact",
            "sender_age_conflict": True,
            "recipient": list(MINOR_BANDS),
            "kinds": [*_CONTACT, "follow", "discover"],
            "connected": False,
            "outcome": "block",
            "reason": "the sender claims to be younger than their other age signals say and is not connected to "
            "this minor",
        },
        {
            "name": "minor.not_discoverable",
            "sender": _ADULTISH,
            "recipient": list(MINOR_BANDS),
            "kinds": ["discover"],
            "connected": False,
            "outcome": "block",
            "reason": "minors are not suggested to or found by adults they are not connected to",
        },
        {
            "name": "under16.stranger_contact",
            "sender": _ADULTISH,
            "recipient": _UNDER16,
            "kinds": _CONTACT,
            "outcome": "block",
            "reason": "under-16s cannot be contacted by adults they are not connected to",
            "relax_when_connected": True,
            "relaxed_prompt": "contact.friction.stranger",
        },
        {
            "name": "under13.stranger_follow",
            "sender": _ADULTISH,
            "recipient": ["under13"],
            "kinds": ["follow"],
            "outcome": "block",
            "reason": "under-13s cannot be followed by adults they are not connected to",
            "relax_when_connected": True,
            "relaxed_prompt": "contact.friction.stranger",
        },
        {
            "name": "teen.new_account",
            "sender": _ADULTISH,
            "recipient": ["16-17"],
            "kinds": _CONTACT,
            "sender_account_days_below": 7,
            "outcome": "block",
            "reason": "a new adult account cannot contact a 16-17 it is not connected to",
            "relax_when_connected": True,
            "relaxed_prompt": "contact.friction.stranger",
        },
        {
            "name": "minor.stranger_follow",
            "sender": _ADULTISH,
            "recipient": ["13-15", "16-17"],
            "kinds": ["follow"],
            "outcome": "friction",
            "prompt": "contact.friction.stranger",
            "reason": "a minor is followed by an adult they are not connected to",
            "relax_when_connected": True,
        },
        {
            "name": "teen.stranger_contact",
            "sender": _ADULTISH,
            "recipient": ["16-17"],
            "kinds": _CONTACT,
            "outcome": "friction",
            "prompt": "contact.friction.stranger",
            "reason": "a 16-17 is contacted by an adult they are not connected to",
            "relax_when_connected": True,
        },
        {
            "name": "unknown_age.stranger_contact",
            "sender": _ADULTISH,
            "recipient": ["unknown"],
            "kinds": ["message", "call", "media"],
            "outcome": "friction",
            "prompt": "contact.friction.unknown_age",
            "reason": "the recipient's age is unknown and they are not connected to the sender",
            "relax_when_connected": True,
        },
    ],
    "fallback": {"outcome": "allow", "reason": "no rule applies"},
}


def default_policy() -> Policy:
    return Policy.model_validate(DEFAULT_POLICY)
