"""How urgent a case is: the priority formula, its bands and their SLAs. Pure functions, no storage.

``priority = severity × confidence × age_factor`` with ``age_factor = 1 + 0.5 × min(age_hours / 72, 1)``: an
unreviewed case climbs by up to half its value over three days, so nothing waits at the bottom for ever. An A1
exact hash match scores 1.0 at once (P1); an ``other`` signal at 0.4 starts in P3 and reaches P2 within 3 days.
The severity of a case is the highest severity among its signals, its confidence the highest confidence among
the signals of that category.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from safehold.cases.taxonomy import BANDS, DEFAULT_SLA_HOURS, severity
from safehold.errors import SafeholdError

#: Hours until the age factor reaches its ceiling.
AGE_HOURS = 72.0
#: How much older cases gain at most (0.5: up to 1.5 × their starting priority).
AGE_BONUS = 0.5
#: The longest SLA an admin may set for a band (one year).
MAX_SLA_HOURS = 24 * 365
BAND_NAMES = tuple(name for name, _ in BANDS)


@dataclass(frozen=True)
class Score:
    """The part of a case's priority that depends on its evidence, not on its age."""

    category: str | None
    severity: float
    confidence: float


def score(signals: Iterable[tuple[str | None, float]]) -> Score:
    """The case's category, severity and confidence from its signals' ``(category, confidence)`` pairs.

    When two categories share the top severity, the one with the more confident signal wins, so the score is
    the same whatever order the signals arrived in.
    """
    best: Score | None = None
    for category, confidence in signals:
        s = Score(category, severity(category), float(confidence))
        if best is None or (s.severity, s.confidence) > (best.severity, best.confidence):
            best = s
    return best or Score(None, 0.0, 0.0)


def age_factor(age_hours: float) -> float:
    return 1.0 + AGE_BONUS * min(max(age_hours, 0.0) / AGE_HOURS, 1.0)


def priority(s: Score, opened_at: dt.datetime, now: dt.datetime) -> float:
    age = (now - opened_at).total_seconds() / 3600.0
    return s.severity * s.confidence * age_factor(age)


def band_of(value: float) -> str:
    """The first band (most urgent first) whose floor ``value`` reaches."""
    for name, floor in BANDS:
        if value >= floor:
            return name
    return BANDS[-1][0]


def more_urgent(a: str, b: str) -> str:
    """Of two bands, the more urgent one (``P1`` beats ``P2``)."""
    return a if BAND_NAMES.index(a) <= BAND_NAMES.index(b) else b


def due_at(opened_at: dt.datetime, band: str, sla_hours: dict[str, float]) -> dt.datetime:
    return opened_at + dt.timedelta(hours=sla_hours[band])


def check_sla_hours(hours: object) -> dict[str, float]:
    """Validate a (possibly partial) ``{band: hours}`` map: known bands, positive finite numbers."""
    if not isinstance(hours, dict) or not hours:
        raise SafeholdError("settings.invalid_sla", f"SLA hours are a map of bands ({', '.join(BAND_NAMES)}) to hours.")
    out: dict[str, float] = {}
    for band, value in hours.items():
        if band not in BAND_NAMES:
            raise SafeholdError("settings.invalid_sla", f"Unknown band {band!r}; bands are {', '.join(BAND_NAMES)}.")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not 0 < value <= MAX_SLA_HOURS:
            raise SafeholdError(
                "settings.invalid_sla",
                f"The SLA of {band} must be a number of hours above 0 and at most {MAX_SLA_HOURS}.",
                detail={"band": band},
            )
        out[band] = value
    return out


def effective_sla(stored: dict | None) -> dict[str, float]:
    """The stored SLA hours over the defaults (a stored value that is no longer valid is ignored)."""
    out: dict[str, float] = dict(DEFAULT_SLA_HOURS)
    for band, value in (stored or {}).items():
        try:
            out.update(check_sla_hours({band: value}))
        except SafeholdError:
            continue
    return out
