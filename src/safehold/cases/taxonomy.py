"""The vocabulary cases, decisions and policies share: categories and their severity, decisions, bands.

Industry classification (the scheme NCMEC's CyberTipline and the Tech Coalition use): A = prepubescent minor,
B = pubescent minor; 1 = sex act, 2 = lascivious exhibition. A1 is the most severe. Categories a platform or a
bank gives that are not in this table are treated as ``other`` in the priority formula, never dropped.
"""

from __future__ import annotations

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
    "other": 0.4,
}

#: Decisions a reviewer can take. ``csam`` needs an industry classification, ``cse`` a kind of exploitation.
DECISIONS = ("csam", "cse", "not_violating", "escalate")
CLASSIFICATIONS = ("A1", "A2", "B1", "B2")
CSE_KINDS = ("grooming", "sextortion", "solicitation", "other")
#: Decisions that are findings of abuse: they trigger policies and, for unknown material, need a second reviewer.
VIOLATING = ("csam", "cse")

#: Where a case waits: the console's queues.
QUEUES = ("media", "text", "report", "live", "account")
STATUSES = ("open", "awaiting_confirmation", "escalated", "closed")

#: Priority bands, most urgent first: a case is in the first band whose floor its priority reaches.
BANDS = (("P1", 0.8), ("P2", 0.55), ("P3", 0.3), ("P4", 0.0))
#: Default SLA (hours from opening to decision) per band; admins change them at run time.
DEFAULT_SLA_HOURS = {"P1": 4, "P2": 24, "P3": 72, "P4": 168}


def severity(category: str | None) -> float:
    return SEVERITY.get(category or "other", SEVERITY["other"])
