"""How much one user report weighs: the reporter's standing, as pure arithmetic (the service counts, this weighs).

A report is a claim by a person, not a detector's measurement, so its weight — the confidence of its signal, one
factor of the case's priority (``severity × confidence``) — says how far the claim is to be believed before a
reviewer looks:

- a **trusted flagger** (an NGO, a hotline, the platform's own safety staff) starts at :data:`TRUSTED`, anyone else
  at :data:`BASE`;
- a reporter whose reports were **repeatedly rejected** (at least :data:`REJECTED_MIN` closed ``not_violating``,
  and more than twice as many as were actioned) is damped by :data:`REJECTED_FACTOR`;
- **mass reporting**: when at least :data:`MASS_REPORTERS` reporters new to the platform (no report before the last
  :data:`MASS_WINDOW`) report one account within that window, each further new reporter's report is damped by
  :data:`MASS_FACTOR` — a brigade cannot push an account up the queue by numbers alone. Trusted flaggers are never
  damped for it.

A damped report still opens or joins the case (nothing is dropped): it only waits lower. A child's own report
about contact or sextortion is urgent whatever its weight (:mod:`safehold.intake.service`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

BASE = 0.5
TRUSTED = 0.9
REJECTED_MIN = 3
REJECTED_FACTOR = 0.5
MASS_REPORTERS = 5
MASS_WINDOW = dt.timedelta(hours=24)
MASS_FACTOR = 0.4
#: No report weighs less (a confidence of 0 would make the case's score 0 for ever).
FLOOR = 0.05


@dataclass(frozen=True)
class Standing:
    """What is known of a reporter and of the reported account when the report arrives."""

    trusted: bool
    actioned: int = 0  # the reporter's earlier reports whose case closed with a finding
    rejected: int = 0  # … whose case closed not_violating
    new_reporter: bool = True  # no report from this reporter before the mass-reporting window
    new_reporters_on_account: int = 0  # other new reporters who reported the same account within the window


@dataclass(frozen=True)
class Weight:
    value: float
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"weight": round(self.value, 4), "reasons": self.reasons}


def weigh(st: Standing) -> Weight:
    """The report's weight in [FLOOR, 1] and why (see the module docs)."""
    value = TRUSTED if st.trusted else BASE
    reasons = ["trusted flagger" if st.trusted else "reporter"]
    if st.rejected >= REJECTED_MIN and st.rejected > 2 * st.actioned:
        value *= REJECTED_FACTOR
        reasons.append(f"damped: {st.rejected} earlier reports rejected, {st.actioned} actioned")
    if not st.trusted and st.new_reporter and st.new_reporters_on_account + 1 >= MASS_REPORTERS:
        value *= MASS_FACTOR
        reasons.append(
            f"damped: {st.new_reporters_on_account + 1} new reporters reported this account within "
            f"{int(MASS_WINDOW.total_seconds() // 3600)} hours"
        )
    return Weight(max(FLOOR, min(1.0, value)), reasons)
