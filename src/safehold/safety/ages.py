"""Age signals per account and the one band resolved from them (Principle 7).

Everything Safehold learns about how old an account's holder is arrives as a *signal* with its source,
confidence and time; signals are kept, never overwritten. Each new signal re-resolves the account's band
(:class:`~safehold.store.models.AccountAge`), naming the rule that decided, so a reviewer or an auditor can see
why an account is treated as a child.

Sources, strongest first: ``reviewer`` (a person who looked), ``assurance`` (an age-assurance provider's
verification or estimation), ``platform`` (the platform's own band), ``declared`` (a self-declared birth date)
and ``chat`` (an age stated in a conversation, from the grooming scorer). The rules, in order:

1. ``reviewer``: the latest reviewer finding decides.
2. ``assurance``: the latest assurance result with confidence ≥ ``ASSURANCE_MIN_CONFIDENCE`` decides.
3. ``protective``: otherwise, if any signal says *minor* with confidence ≥ ``MINOR_MIN_CONFIDENCE``, the
   youngest such band decides, even over a self-declared adult birth date: an unverified claim of adulthood
   does not switch off a child's protections (a child who said "i'm 13" in chat is treated as one until
   assurance or a reviewer says otherwise).
4. ``strongest``: otherwise the signal of the strongest source (then the latest) decides.
5. ``none``: no signal: ``unknown``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold.agebands import BANDS, ORDER, band_for_age, band_for_birth_date, is_minor
from safehold.audit import AuditService
from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.store.models import AccountAge, AccountAgeSignal, iso, utcnow

SOURCES = ("reviewer", "assurance", "platform", "declared", "chat")
#: Strength of each source for the ``strongest`` rule (higher wins).
STRENGTH = {source: len(SOURCES) - i for i, source in enumerate(SOURCES)}
ASSURANCE_MIN_CONFIDENCE = 0.5
MINOR_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class ResolvedAge:
    account_id: str
    band: str
    rule: str
    signal_id: int | None = None
    resolved_at: dt.datetime | None = None

    @property
    def minor(self) -> bool:
        return is_minor(self.band)

    def to_dict(self) -> dict:
        return {
            "account_id": self.account_id,
            "band": self.band,
            "minor": self.minor,
            "rule": self.rule,
            "signal_id": self.signal_id,
            "resolved_at": iso(self.resolved_at),
        }


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("age.invalid", message, status=422)


def resolve(account_id: str, signals: list[AccountAgeSignal]) -> ResolvedAge:
    """The band the rules of this module give ``signals`` (one account's, any order)."""
    latest_first = sorted(signals, key=lambda s: (s.at, s.id or 0), reverse=True)

    def decided(rule: str, s: AccountAgeSignal) -> ResolvedAge:
        return ResolvedAge(account_id, s.band, rule, s.id)

    for s in latest_first:
        if s.source == "reviewer":
            return decided("reviewer", s)
    for s in latest_first:
        if s.source == "assurance" and s.confidence >= ASSURANCE_MIN_CONFIDENCE:
            return decided("assurance", s)
    minors = [s for s in latest_first if is_minor(s.band) and s.confidence >= MINOR_MIN_CONFIDENCE]
    if minors:
        return decided("protective", min(minors, key=lambda s: ORDER[s.band]))
    known = [s for s in latest_first if s.band != "unknown"]
    if known:
        return decided("strongest", max(known, key=lambda s: STRENGTH[s.source]))
    return ResolvedAge(account_id, "unknown", "none")


class AgeBook:
    """Records age signals and answers each account's resolved band."""

    def __init__(self, db: Database, audit: AuditService):
        self.db = db
        self.audit = audit

    def record(
        self,
        actor: str,
        account_id: str,
        source: str,
        *,
        band: str | None = None,
        age: float | None = None,
        birth_date: dt.date | None = None,
        confidence: float = 1.0,
        method: str | None = None,
        provider: str | None = None,
        reference: str | None = None,
        session: Session | None = None,
    ) -> ResolvedAge:
        """Keep one signal (a band, an age or a birth date) and re-resolve the account; ``age.invalid`` (422)
        for a signal that says nothing or contradicts itself. With ``session`` it joins that transaction."""
        if not account_id or len(account_id) > 128:
            raise _invalid("account_id must be 1 to 128 characters")
        if source not in SOURCES:
            raise _invalid(f"source must be one of {', '.join(SOURCES)}")
        if not 0.0 <= confidence <= 1.0:
            raise _invalid("confidence must be in [0, 1]")
        derived = None
        if birth_date is not None:
            if birth_date > utcnow().date():
                raise _invalid("birth_date is in the future")
            derived = band_for_birth_date(birth_date)
        elif age is not None:
            if not 0 <= age <= 130:
                raise _invalid("age must be in [0, 130]")
            derived = band_for_age(age)
        if band is None:
            band = derived
        if band is None:
            raise _invalid("give a band, an age or a birth_date")
        if band not in BANDS:
            raise _invalid(f"band must be one of {', '.join(BANDS)}")
        if derived is not None and derived != band:
            raise _invalid(f"band {band!r} contradicts the age given ({derived!r})")
        if session is None:
            with self.db.session() as s:
                return self.record(
                    actor, account_id, source, band=band, age=age, birth_date=birth_date, confidence=confidence,
                    method=method, provider=provider, reference=reference, session=s,
                )  # fmt: skip
        row = AccountAgeSignal(
            account_id=account_id,
            source=source,
            band=band,
            age=age,
            birth_date=birth_date,
            confidence=float(confidence),
            method=method,
            provider=provider,
            reference=reference,
            actor=actor,
            at=utcnow(),
        )
        session.add(row)
        session.flush()
        resolved = self._resolve(session, account_id)
        self.audit.record(
            session,
            actor,
            "age.signal",
            f"account:{account_id}",
            {
                "source": source,
                "band": band,
                "confidence": confidence,
                "resolved": resolved.band,
                "rule": resolved.rule,
            },
        )
        return resolved

    def _resolve(self, session: Session, account_id: str) -> ResolvedAge:
        signals = list(session.scalars(select(AccountAgeSignal).where(AccountAgeSignal.account_id == account_id)))
        r = resolve(account_id, signals)
        now = utcnow()
        values = {"account_id": account_id, "band": r.band, "rule": r.rule, "signal_id": r.signal_id}
        values["resolved_at"] = now
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = insert(AccountAge).values(**values)
        session.execute(stmt.on_conflict_do_update(index_elements=["account_id"], set_=values))
        return ResolvedAge(account_id, r.band, r.rule, r.signal_id, now)

    def resolved(self, account_id: str) -> ResolvedAge:
        """The account's band (``unknown`` with rule ``none`` when nothing is known)."""
        with self.db.session() as s:
            row = s.get(AccountAge, account_id)
            if row is None:
                return ResolvedAge(account_id, "unknown", "none")
            return ResolvedAge(account_id, row.band, row.rule, row.signal_id, row.resolved_at)

    def band(self, account_id: str | None) -> str:
        """The account's band; ``unknown`` for no account. (The pipeline's :class:`AgeLookup`.)"""
        return self.resolved(account_id).band if account_id else "unknown"

    def signals(self, account_id: str) -> list[dict]:
        with self.db.session() as s:
            rows = s.scalars(
                select(AccountAgeSignal)
                .where(AccountAgeSignal.account_id == account_id)
                .order_by(AccountAgeSignal.at.desc(), AccountAgeSignal.id.desc())
            )
            return [
                {
                    "id": r.id,
                    "source": r.source,
                    "band": r.band,
                    "age": r.age,
                    "birth_date": r.birth_date.isoformat() if r.birth_date else None,
                    "confidence": r.confidence,
                    "method": r.method,
                    "provider": r.provider,
                    "reference": r.reference,
                    "actor": r.actor,
                    "at": iso(r.at),
                }
                for r in rows
            ]
