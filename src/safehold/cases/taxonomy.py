"""The vocabulary cases, decisions and policies share: categories and their severity, decisions, bands.

Industry classification (the scheme NCMEC's CyberTipline and the Tech Coalition use): A = prepubescent minor,
B = pubescent minor; 1 = sex act, 2 = lascivious exhibition. A1 is the most severe. Categories a platform or a
bank gives that are not in this table are treated as ``other`` in the priority formula, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Severity in [0, 1] of each category: the first factor of a case's priority.
SEVERITY: dict[str, float] = {
    "A1": 1.0,
    "A2": 0.9,
    "B1": 0.85,
    "B2": 0.75,
    "csam": 0.8,  # apparent CSAM not yet classified
    "sextortion": 0.8,
    "grooming": 0.7,
    "solicitation": 0.7,
    "livestream": 0.8,
    "sexualised_comments": 0.6,  # user reports (intake): sexualised comments on images of a child
    "image_collection": 0.55,  # user reports: a collection of innocuous images of children
    "other": 0.4,
}

#: Decisions a reviewer can take. ``csam`` needs an industry classification, ``cse`` a kind of exploitation.
DECISIONS = ("csam", "cse", "not_violating", "escalate")
CLASSIFICATIONS = ("A1", "A2", "B1", "B2")
CSE_KINDS = ("grooming", "sextortion", "solicitation", "other")
#: Decisions that are findings of abuse: they trigger policies and, for unknown material, need a second reviewer.
VIOLATING = ("csam", "cse")
#: What a closed case's decision says about the bank entries whose matches it holds: a finding of abuse confirms
#: them, ``not_violating`` makes each a false positive (``escalate`` never closes a case). Match statistics derive
#: each entry's false-positive rate from it.
MATCH_OUTCOMES = {**{d: "true_positive" for d in VIOLATING}, "not_violating": "false_positive"}

#: Where a case waits: the console's queues.
QUEUES = ("media", "text", "report", "live", "account")
STATUSES = ("open", "awaiting_confirmation", "escalated", "closed")

#: Priority bands, most urgent first: a case is in the first band whose floor its priority reaches. No score
#: reaches P0's floor (severity × confidence × age factor is at most 1.5): only an urgency rule puts a case there.
BANDS = (("P0", 2.0), ("P1", 0.8), ("P2", 0.55), ("P3", 0.3), ("P4", 0.0))
#: Default SLA (hours from opening to decision) per band; admins change them at run time.
DEFAULT_SLA_HOURS = {"P0": 1, "P1": 4, "P2": 24, "P3": 72, "P4": 168}

#: Signal levels, lowest first. A detector may state its signal's level (``detail.level``: the grooming and
#: solicitation scorers do); otherwise it is read from the confidence with these floors (the scorers' own bands).
LEVELS = ("none", "low", "medium", "high")
LEVEL_FLOORS = (("high", 0.7), ("medium", 0.4), ("low", 0.0))


@dataclass(frozen=True)
class UrgencyRule:
    """Facts about one signal that make its case more urgent than its score says.

    The rule fires for a signal whose level is at least ``level`` and whose ``detail`` has every key in ``facts``
    set (true, or a non-empty description); the case then goes to ``band`` (never down) and gets that band's SLA.
    ``reason`` is what the case record says about why.
    """

    name: str
    band: str
    level: str
    facts: tuple[str, ...]
    reason: str


#: The urgency rules, checked for every signal a case receives.
URGENCY_RULES: tuple[UrgencyRule, ...] = (
    UrgencyRule(
        name="minor_at_risk",
        band="P0",
        level="high",
        facts=("minor_at_risk",),
        reason="a person under 18 is at risk and the detection is high: a child may be in contact with an abuser "
        "now, which outranks content that is already known",
    ),
    UrgencyRule(
        name="minor_disclosure",
        band="P0",
        level="high",
        facts=("minor_disclosure",),
        reason="a participant under 18 said in their own words that they are being threatened, asked for images or "
        "abused: a child is asking for help now",
    ),
)


def severity(category: str | None) -> float:
    return SEVERITY.get(category or "other", SEVERITY["other"])
