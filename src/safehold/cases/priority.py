"""How urgent a case is: the priority formula, its bands and their SLAs. Pure functions, no storage.

``priority = severity × confidence × age_factor`` with ``age_factor = 1 + 0.5 × min(age_hours / 72, 1)``: an
unreviewed case climbs by up to half its value over three days, so nothing waits at the bottom for ever. An A1
exact hash match scores 1.0 at once (P1); an ``other`` signal at 0.4 starts in P3 and reaches P2 within 3 days.
The severity of a case is the highest severity among its signals, its confidence the highest confidence among
the signals of that category.

Some facts outrank any score: an :data:`~safehold.cases.taxonomy.URGENCY_RULES` rule (a minor at risk in a high
detection) sends a case to its band — P0, which no score reaches — with that band's SLA, and says why
(:func:`reasons`). Escalation moves a case one band up but never into P0: P0 says how fast a child needs help,
escalation only who decides.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from safehold.cases.taxonomy import BANDS, DEFAULT_SLA_HOURS, LEVEL_FLOORS, LEVELS, URGENCY_RULES, UrgencyRule, severity
from safehold.errors import SafeholdError

#: Hours until the age factor reaches its ceiling.
AGE_HOURS = 72.0
#: How much older cases gain at most (0.5: up to 1.5 × their starting priority).
AGE_BONUS = 0.5
#: The longest SLA an admin may set for a band (one year).
MAX_SLA_HOURS = 24 * 365
BAND_NAMES = tuple(name for name, _ in BANDS)
#: Bands only an urgency rule gives (escalation stops below them).
RULE_BANDS = frozenset(r.band for r in URGENCY_RULES)


class SignalFacts(Protocol):
    """What the rules read of a signal: a ``DetectionSignal`` or a stored ``CaseSignal``."""

    source: str
    category: str | None
    confidence: float
    detail: dict | None


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


def floor(band: str) -> float:
    """The lowest priority of ``band``: a case moved into it gets at least this, so lists sort it with its band."""
    return dict(BANDS)[band]


def escalated(band: str) -> str:
    """One band more urgent than ``band``, but never into a band only a rule gives (see the module docs)."""
    i = BAND_NAMES.index(band)
    up = BAND_NAMES[max(i - 1, 0)]
    return band if up in RULE_BANDS and band not in RULE_BANDS else up


def level_of(sig: SignalFacts) -> str:
    """The signal's level: the detector's own (``detail.level``), else from its confidence."""
    stated = (sig.detail or {}).get("level")
    if stated in LEVELS:
        return stated
    return next(name for name, low in LEVEL_FLOORS if float(sig.confidence) >= low)


def urgent(sig: SignalFacts) -> list[UrgencyRule]:
    """The urgency rules ``sig`` fires."""
    detail = sig.detail or {}
    level = LEVELS.index(level_of(sig))
    return [r for r in URGENCY_RULES if level >= LEVELS.index(r.level) and all(detail.get(f) for f in r.facts)]


def urgent_band(signals: Iterable[SignalFacts]) -> str | None:
    """The most urgent band the rules give for ``signals``, or ``None`` when none fires."""
    bands = [r.band for sig in signals for r in urgent(sig)]
    return min(bands, key=BAND_NAMES.index) if bands else None


def reasons(signals: Iterable[SignalFacts], s: Score) -> list[str]:
    """Why a case is as urgent as it is, in words: each rule a signal fired (with the facts it fired on), then
    the score's own terms. Reviewers read these on the case record; the audit record keeps them as they were."""
    out: list[str] = []
    for sig in signals:
        for r in urgent(sig):
            fact = ", ".join(f"{f}: {_fact((sig.detail or {})[f])}" for f in r.facts)
            line = f"{r.band} (rule {r.name}): {r.reason} — {sig.source} signal, {sig.category or 'other'}"
            line += f", level {level_of(sig)}; {fact}."
            if line not in out:
                out.append(line)
    out.append(
        f"Score {s.severity * s.confidence:.2f} before ageing ({band_of(s.severity * s.confidence)}): "
        f"{s.category or 'other'} (severity {s.severity}) × confidence {s.confidence:.2f}."
    )
    return out


def _fact(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)
    return "yes" if value is True else str(value)


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
