"""How long preserved evidence is kept: the rule (pure) and the facts it needs (queried in batches).

An item is **kept** while an active legal hold covers its case or its account (not released, not lapsed), or
while a report that bundles its case or carries it is unfinished. Otherwise it **expires** ``days`` after its
base: the latest ``finished_at`` of its finished reports (the REPORT Act's year runs from the report), else
``preserved_at``.
``days`` is the jurisdiction's (``settings.evidence_retention_by_jurisdiction``, e.g. at most 12 months for EU
voluntary detection) or ``settings.evidence_retention_days``. A hold that lapses on a date keeps the item at least
until then. Retracted reports keep nothing.

Which reports need which items is reporting's to say (:mod:`safehold.evidence.reports`): evidence never reads
reporting's tables.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from safehold.config import Settings
from safehold.evidence.reports import Reports
from safehold.store.models import EvidenceItem, LegalHold, as_utc, iso


@dataclass(frozen=True)
class Hold:
    id: int
    expires_at: dt.datetime | None  # None: until released


@dataclass(frozen=True)
class Retention:
    jurisdiction: str
    days: int
    basis: str  # "report_finished" | "preserved"
    base: dt.datetime
    #: When it may be purged; None while an unfinished report or an open-ended hold keeps it.
    expires_at: dt.datetime | None
    held: bool
    needed_by_report: bool
    holds: tuple[int, ...] = ()
    reports: tuple[int, ...] = ()  # the unfinished reports that need it

    def due(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def to_dict(self) -> dict:
        return {
            "jurisdiction": self.jurisdiction,
            "days": self.days,
            "basis": self.basis,
            "base": iso(self.base),
            "expires_at": iso(self.expires_at),
            "held": self.held,
            "needed_by_report": self.needed_by_report,
            "holds": list(self.holds),
            "reports": list(self.reports),
        }


def days_for(settings: Settings, jurisdiction: str) -> int:
    return settings.evidence_retention_by_jurisdiction.get(jurisdiction, settings.evidence_retention_days)


def decide(
    settings: Settings,
    *,
    jurisdiction: str,
    preserved_at: dt.datetime,
    finished: Iterable[dt.datetime] = (),
    holds: Iterable[Hold] = (),
    unfinished: Iterable[int] = (),
) -> Retention:
    """The rule, on facts already gathered: ``finished`` are the finish times of the finished reports that
    need the item, ``holds`` the *active* holds covering it, ``unfinished`` the ids of unfinished reports."""
    days = days_for(settings, jurisdiction)
    finished, holds, unfinished = [as_utc(f) for f in finished if f is not None], list(holds), sorted(unfinished)
    base, basis = (max(finished), "report_finished") if finished else (as_utc(preserved_at), "preserved")
    expires: dt.datetime | None = base + dt.timedelta(days=days)
    if unfinished or any(h.expires_at is None for h in holds):
        expires = None
    elif holds:
        expires = max([expires, *(as_utc(h.expires_at) for h in holds)])
    return Retention(
        jurisdiction=jurisdiction,
        days=days,
        basis=basis,
        base=base,
        expires_at=expires,
        held=bool(holds),
        needed_by_report=bool(unfinished),
        holds=tuple(sorted(h.id for h in holds)),
        reports=tuple(unfinished),
    )


def active_holds(now: dt.datetime):
    """The condition for a hold in force at ``now``."""
    return LegalHold.released_at.is_(None), or_(LegalHold.expires_at.is_(None), LegalHold.expires_at > now)


def assess(
    s: Session, items: list[EvidenceItem], settings: Settings, now: dt.datetime, reports: Reports
) -> dict[int, Retention]:
    """The retention of each item, with a handful of queries for the whole batch (not per item)."""
    if not items:
        return {}
    ids = [e.id for e in items]
    case_ids = {e.case_id for e in items if e.case_id is not None}
    accounts = {e.account_id for e in items if e.account_id is not None}
    by_case, by_item = reports.claims(s, case_ids, ids)

    holds_case: dict[int, list[Hold]] = defaultdict(list)
    holds_account: dict[str, list[Hold]] = defaultdict(list)
    scope = []
    if case_ids:
        scope.append(LegalHold.case_id.in_(case_ids))
    if accounts:
        scope.append(LegalHold.account_id.in_(accounts))
    if scope:
        for h in s.scalars(select(LegalHold).where(*active_holds(now), or_(*scope))):
            if h.case_id is not None:
                holds_case[h.case_id].append(Hold(h.id, h.expires_at))
            if h.account_id is not None:
                holds_account[h.account_id].append(Hold(h.id, h.expires_at))

    out = {}
    for e in items:
        claims = {*by_case.get(e.case_id, ()), *by_item.get(e.id, ())}
        out[e.id] = decide(
            settings,
            jurisdiction=e.jurisdiction,
            preserved_at=e.preserved_at,
            finished=[c.finished_at for c in claims if not c.unfinished],
            holds={*holds_case.get(e.case_id, ()), *holds_account.get(e.account_id, ())},
            unfinished={c.report_id for c in claims if c.unfinished},
        )
    return out


def candidates(settings: Settings, now: dt.datetime, reports: Reports):
    """A cheap superset of what may have expired by ``now``: live items whose base (preservation, or a finished
    report needing them) is older than the shortest retention configured. :func:`assess` decides exactly."""
    shortest = min([settings.evidence_retention_days, *settings.evidence_retention_by_jurisdiction.values()])
    cutoff = now - dt.timedelta(days=shortest)
    via_case, via_item = reports.finished_before(cutoff)
    return EvidenceItem.purged_at.is_(None), or_(
        EvidenceItem.preserved_at < cutoff, EvidenceItem.case_id.in_(via_case), EvidenceItem.id.in_(via_item)
    )
