"""Age signals per account and the one band resolved from them (Principle 7).

Everything Safehold learns about how old an account's holder is arrives as a *signal* with its source,
confidence and time; signals are kept, never overwritten. Each new signal re-resolves the account's band
(:class:`~safehold.store.models.AccountAge`), naming the rule and the signal that decided, so a reviewer or an
auditor can see why an account is treated as a child.

Sources, strongest first: ``reviewer`` (a person who looked), ``assurance`` (an age-assurance provider's
verification or estimation), ``platform`` (the platform's own band or an age it gives with a conversation's
participants), ``declared`` (a self-declared birth date) and ``chat`` (an age stated in a conversation, from the
grooming scorer; only Safehold records it).

**Signals age.** A signal with a birth date is banded on the day of resolution, and one with an age (stated or
estimated) counts the whole years since it was given, so a 12-year-old's declared birth date makes the account
``13-15`` on their 13th birthday without anyone sending anything. The resolved row keeps ``changes_at``, the
next such birthday of any signal; the first read after it resolves again. A signal with a band only never ages.

The rules, in order (the public guidance behind each: the ICO's Children's Code and its opinion on age assurance,
Ofcom's guidance on highly effective age assurance, the European Commission's guidelines on the protection of
minors under Article 28 DSA — self-declaration is not age assurance; estimation has an error margin and needs a
buffer; when signals conflict, treat the user as the younger one until assurance says otherwise):

1. ``reviewer``: the latest reviewer finding decides (a person who weighed the other signals); a finding of
   ``unknown`` ("could not tell") leaves the decision to the other rules, so it never switches protections off.
2. ``assurance``: the latest *conclusive* assurance result with confidence ≥ ``ASSURANCE_MIN_CONFIDENCE``
   decides; a ``verification`` outranks an ``estimation`` (or any other method) whatever their order. A result
   that says ``adult`` is conclusive only when it is a ``verification``, or gives an age of at least 18 + the
   buffer (``age_estimation_buffer_years``, the "challenge age": 2 years by default), or — a band or a birth
   date without an age — has confidence ≥ ``ASSURANCE_ADULT_CONFIDENCE`` (0.9). Anything weaker stays a signal
   the later rules weigh, so a bare "adult" estimate never overrides a declared 12-year-old.
3. ``protective``: otherwise, if any signal says *minor* with confidence ≥ ``MINOR_MIN_CONFIDENCE``, the
   youngest such band decides, even over a self-declared adult birth date: an unverified claim of adulthood
   does not switch off a child's protections (a child who said "i'm 13" in chat is treated as one until
   assurance or a reviewer says otherwise).
4. ``strongest``: otherwise the signal of the strongest source (then the latest) decides.
5. ``none``: no signal that says anything: ``unknown``.

**The sender's band.** The protective band is right for an account that *receives* contact and wrong for one that
*sends* it: an adult who says "i'm 14 too" in chat would become ``13-15`` and reach children freely. So each
resolution also names ``sender_band``, the band the contact and media policies use for the account as a sender:
the decision of a reviewer or a conclusive assurance result stands; otherwise the *oldest* band that a credible
signal (confidence ≥ ``MINOR_MIN_CONFIDENCE``) from ``platform``, ``declared`` or ``assurance`` says, if older
than the protective band. When that is ``adult`` while the protective band is a minor's, the account has an
**age conflict** (``age_conflict``): a younger claim against an adult signal. Adults posing as peers is a
documented grooming tactic (the NSPCC's guidance on grooming: groomers may pretend to be younger than they are;
Europol's IOCTA reports), so the default contact policy treats such a sender at least as
strictly as an adult stranger (``safehold.safety.contact``). A child who lied about their age when signing up
looks the same; age assurance or a reviewer resolves the conflict either way.

**Reading fast.** The contact policy asks for a band on every message, so :class:`AgeBook` keeps the bands it
has read in an in-process cache (:class:`BandCache`: at most ``CACHE_SIZE`` accounts, each for
``age_cache_ttl_seconds``). A band recorded in this process replaces its entry when the transaction commits, so
this process sees it at once; another process sees it within the TTL. A cache hit costs no database round trip.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import event, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold.agebands import BANDS, ORDER, age_on, band_for_age, is_minor
from safehold.audit import AuditService
from safehold.cases.service import lock_writes
from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.store.models import AccountAge, AccountAgeSignal, iso, utcnow

SOURCES = ("reviewer", "assurance", "platform", "declared", "chat")
#: What a caller outside Safehold may send: ``chat`` comes only from the conversation door.
EXTERNAL_SOURCES = ("declared", "assurance", "platform", "reviewer")
#: Strength of each source for the ``strongest`` rule (higher wins).
STRENGTH = {source: len(SOURCES) - i for i, source in enumerate(SOURCES)}
RULES = ("reviewer", "assurance", "protective", "strongest", "none")
ASSURANCE_MIN_CONFIDENCE = 0.5
#: Confidence an assurance result needs to say ``adult`` alone without a verification or an age past the buffer.
ASSURANCE_ADULT_CONFIDENCE = 0.9
#: Sources whose adult signal outweighs a younger claim for the account as a sender (not ``chat``: anyone may
#: say anything in a conversation).
SENDER_SOURCES = ("assurance", "platform", "declared")
MINOR_MIN_CONFIDENCE = 0.5
#: An age stated in chat ("i'm 13"): a person's own words, often true for children, sometimes a role or a joke.
CHAT_CONFIDENCE = 0.6
#: An age the platform gives with a conversation's participants (declared or estimated: it does not say which).
PARTICIPANT_CONFIDENCE = 0.8
#: The age thresholds of the bands: a signal's band can change on these birthdays.
THRESHOLDS = (13, 16, 18)
#: Accounts a process keeps resolved bands for (least recently used dropped first).
CACHE_SIZE = 100_000
MAX_ID = 128
MAX_LIMIT = 500
#: The most signals an account's page, ``GET …/age`` and ``safehold age show`` list (newest first).
MAX_SIGNALS_SHOWN = 200
_FIELD_LIMITS = {"method": 32, "provider": 64, "reference": 200}
_LOCK_CLASS = 10010  # PostgreSQL advisory lock namespace: one account's signals are resolved one at a time


@dataclass(frozen=True)
class ResolvedAge:
    account_id: str
    band: str
    rule: str
    signal_id: int | None = None
    resolved_at: dt.datetime | None = None
    changes_at: dt.datetime | None = None
    #: The band for the account as a sender of contact; None means ``band`` (see the module doc).
    sender: str | None = None
    age_conflict: bool = False

    @property
    def minor(self) -> bool:
        return is_minor(self.band)

    @property
    def sender_band(self) -> str:
        return self.sender or self.band

    def to_dict(self) -> dict:
        return {
            "account_id": self.account_id,
            "band": self.band,
            "minor": self.minor,
            "rule": self.rule,
            "signal_id": self.signal_id,
            "resolved_at": iso(self.resolved_at),
            "changes_at": iso(self.changes_at),
            "sender_band": self.sender_band,
            "age_conflict": self.age_conflict,
        }


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("age.invalid", message, status=422)


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year: the birthday is kept on 1 March
        return day.replace(year=day.year + years, month=3, day=1)


def _born(s: AccountAgeSignal) -> dt.date | None:
    """The signal's birth date, given or implied (an age given on a day means born that many years before)."""
    if s.birth_date is not None:
        return s.birth_date
    if s.age is not None:
        return _add_years(s.at.date(), -int(s.age))
    return None


def band_now(s: AccountAgeSignal, today: dt.date) -> str:
    """What the signal says today: a birth date or an age counts the years since; a band alone is as given."""
    born = _born(s)
    return band_for_age(age_on(born, today)) if born is not None else s.band


def _next_change(signals: list[AccountAgeSignal], today: dt.date) -> dt.datetime | None:
    """The first birthday after today on which some signal's band changes (13th, 16th or 18th)."""
    days = []
    for s in signals:
        born = _born(s)
        if born is not None:
            days += [d for d in (_add_years(born, t) for t in THRESHOLDS) if d > today]
    return dt.datetime.combine(min(days), dt.time(), dt.UTC) if days else None


def _conclusive(s: AccountAgeSignal, band: str, buffer_years: float) -> bool:
    """Whether an assurance result may decide alone: an estimate says adult only past the challenge age."""
    if s.confidence < ASSURANCE_MIN_CONFIDENCE:
        return False
    if band != "adult" or s.method == "verification":
        return True
    if s.age is not None and s.birth_date is None:
        return s.age >= 18 + buffer_years
    return s.confidence >= ASSURANCE_ADULT_CONFIDENCE


def resolve(
    account_id: str, signals: list[AccountAgeSignal], today: dt.date | None = None, buffer_years: float = 2.0
) -> ResolvedAge:
    """The band the rules of this module give ``signals`` (one account's, any order) on ``today``."""
    today = today or utcnow().date()
    latest_first = sorted(signals, key=lambda s: (s.at, s.id or 0), reverse=True)
    now = {id(s): band_now(s, today) for s in latest_first}
    changes_at = _next_change(latest_first, today)

    def decided(rule: str, s: AccountAgeSignal) -> ResolvedAge:
        band = now[id(s)]
        if rule in ("reviewer", "assurance"):  # a person's finding or a conclusive result stands for both
            return ResolvedAge(account_id, band, rule, s.id, changes_at=changes_at)
        older = [
            now[id(x)]
            for x in latest_first
            if x.source in SENDER_SOURCES and x.confidence >= MINOR_MIN_CONFIDENCE and now[id(x)] != "unknown"
        ]
        sender = max([band, *older], key=lambda b: -1 if b == "unknown" else ORDER[b])
        conflict = sender == "adult" and is_minor(band)
        return ResolvedAge(account_id, band, rule, s.id, changes_at=changes_at, sender=sender, age_conflict=conflict)

    for s in latest_first:
        if s.source == "reviewer" and s.band != "unknown":  # "could not tell" leaves it to the other rules
            return decided("reviewer", s)
    assured = [s for s in latest_first if s.source == "assurance" and _conclusive(s, now[id(s)], buffer_years)]
    if assured:
        return decided("assurance", next((s for s in assured if s.method == "verification"), assured[0]))
    minors = [s for s in latest_first if is_minor(now[id(s)]) and s.confidence >= MINOR_MIN_CONFIDENCE]
    if minors:
        return decided("protective", min(minors, key=lambda s: ORDER[now[id(s)]]))
    known = [s for s in latest_first if now[id(s)] != "unknown"]
    if known:
        return decided("strongest", max(known, key=lambda s: STRENGTH[s.source]))
    return ResolvedAge(account_id, "unknown", "none", changes_at=changes_at)


def signal_dict(r: AccountAgeSignal, today: dt.date | None = None) -> dict:
    return {
        "id": r.id,
        "source": r.source,
        "band": r.band,
        "band_now": band_now(r, today or utcnow().date()),
        "age": r.age,
        "birth_date": r.birth_date.isoformat() if r.birth_date else None,
        "confidence": r.confidence,
        "method": r.method,
        "provider": r.provider,
        "reference": r.reference,
        "actor": r.actor,
        "at": iso(r.at),
    }


class BandCache:
    """Resolved bands by account, at most ``size`` accounts. Thread-safe; a lookup is a dictionary read under a lock.

    An entry is *fresh* for ``ttl`` seconds; then it is still answered (a band rarely changes, and a band recorded
    in this process replaces its entry at once) but queued to be read again: :meth:`stale` hands the queue to
    :meth:`AgeBook.bands_resolved`, which re-reads it in one query with the next lookup, at most every
    ``REFRESH_EVERY`` seconds. So a busy process re-reads its accounts in a few batches a second rather than a query
    per check, and a band recorded in another process is used within ``ttl`` plus about a second. An entry is
    never answered past its ``changes_at`` (a birthday that moves the band)."""

    REFRESH_EVERY = 1.0
    MAX_BATCH = 500

    def __init__(self, ttl: float, size: int = CACHE_SIZE):
        self.ttl = ttl
        self.size = size
        # account -> (resolution, fresh until, never past) in monotonic seconds
        self._entries: OrderedDict[str, tuple[ResolvedAge, float, float]] = OrderedDict()
        self._stale: dict[str, None] = {}  # an ordered set: accounts to read again
        self._refresh_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, account_id: str) -> ResolvedAge | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(account_id)
            if entry is None:
                return None
            if entry[2] <= now:
                del self._entries[account_id]
                self._stale.pop(account_id, None)
                return None
            if entry[1] <= now:
                self._stale[account_id] = None
            self._entries.move_to_end(account_id)
            return entry[0]

    def refresh_due(self) -> bool:
        """Whether the next lookup should read the stale entries again."""
        return bool(self._stale) and time.monotonic() >= self._refresh_at

    def stale(self) -> list[str]:
        """Up to ``MAX_BATCH`` accounts to read again, if a refresh is due (the refresh is then not due again for
        ``REFRESH_EVERY`` seconds)."""
        with self._lock:
            if not self.refresh_due():
                return []
            self._refresh_at = time.monotonic() + self.REFRESH_EVERY
            return list(itertools.islice(self._stale, self.MAX_BATCH))

    def put(self, resolved: ResolvedAge) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        never_past = float("inf")
        if resolved.changes_at is not None:
            never_past = now + (resolved.changes_at - utcnow()).total_seconds()
        with self._lock:
            self._entries[resolved.account_id] = (resolved, now + self.ttl, never_past)
            self._entries.move_to_end(resolved.account_id)
            self._stale.pop(resolved.account_id, None)
            while len(self._entries) > self.size:
                gone, _ = self._entries.popitem(last=False)
                self._stale.pop(gone, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._stale.clear()

    def __len__(self) -> int:
        return len(self._entries)


def account_problem(account_id: object, name: str = "account_id") -> str | None:
    """What is wrong with an account id, or None: the one rule every door (ages, contact, media) applies."""
    if not (isinstance(account_id, str) and 1 <= len(account_id) <= MAX_ID and account_id.strip()):
        return f"{name} must be 1 to {MAX_ID} characters, not blank"
    if not account_id.isprintable():
        return f"{name} must be printable"
    return None


def check_account(account_id: object) -> str:
    problem = account_problem(account_id)
    if problem is not None:
        raise _invalid(problem)
    return account_id  # type: ignore[return-value]


class AgeBook:
    """Records age signals and answers each account's resolved band (cached in process, see the module doc)."""

    def __init__(self, db: Database, audit: AuditService, *, cache_ttl: float = 2.0, estimation_buffer: float = 2.0):
        self.db = db
        self.audit = audit
        self.cache = BandCache(cache_ttl)
        self.estimation_buffer = estimation_buffer

    # ---------------------------------------------------------------- recording

    def record(self, actor: str, account_id: str, source: str, **signal) -> ResolvedAge:
        """Keep one signal (see :meth:`add`) and answer the account's resolution."""
        return self._keep(actor, account_id, source, **signal)[2]

    def add(self, actor: str, account_id: str, source: str, **signal) -> dict:
        """Keep one signal; ``{"signal", "duplicate", "age"}`` (see :meth:`_keep`)."""
        row, duplicate, resolved = self._keep(actor, account_id, source, **signal)
        return {"signal": row, "duplicate": duplicate, "age": resolved.to_dict()}

    def _keep(
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
    ) -> tuple[dict, bool, ResolvedAge]:
        """Keep one signal (a band, an age or a birth date) and re-resolve the account; ``age.invalid`` (422)
        for a signal that says nothing or contradicts itself. With ``session`` it joins that transaction.

        A signal naming a ``reference`` already recorded for the account with the same source and provider is
        a retry: nothing new is kept (``duplicate`` true). Returns the signal, ``duplicate`` and the resolution."""
        check_account(account_id)
        if source not in SOURCES:
            raise _invalid(f"source must be one of {', '.join(SOURCES)}")
        if not 0.0 <= confidence <= 1.0:
            raise _invalid("confidence must be in [0, 1]")
        for name, value in (("method", method), ("provider", provider), ("reference", reference)):
            if value is not None and not (1 <= len(value) <= _FIELD_LIMITS[name] and value.isprintable()):
                raise _invalid(f"{name} must be 1 to {_FIELD_LIMITS[name]} printable characters")
        band = self._band_of(band, age, birth_date)
        if session is None:
            with self.db.session() as s:
                return self._keep(
                    actor, account_id, source, band=band, age=age, birth_date=birth_date, confidence=confidence,
                    method=method, provider=provider, reference=reference, session=s,
                )  # fmt: skip
        self._lock(session, account_id)
        if reference is not None:
            same = session.scalars(
                select(AccountAgeSignal)
                .where(
                    AccountAgeSignal.account_id == account_id,
                    AccountAgeSignal.source == source,
                    AccountAgeSignal.reference == reference,
                    AccountAgeSignal.provider.is_(None) if provider is None else AccountAgeSignal.provider == provider,
                )
                .limit(1)
            ).first()
            if same is not None:
                return signal_dict(same), True, self._from_row(account_id, session.get(AccountAge, account_id))
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
        return signal_dict(row), False, resolved

    def record_if_new(
        self,
        session: Session,
        actor: str,
        account_id: str,
        source: str,
        age: int,
        *,
        confidence: float,
        method: str,
        provider: str | None = None,
        reference: str | None = None,
    ) -> bool:
        """Record an age from ``source`` unless the account's latest signal from that source says the same age:
        a chatty account is one signal per change, not one per message. In the caller's transaction; True if
        kept."""
        self._lock(session, account_id)
        last = session.scalars(
            select(AccountAgeSignal.age)
            .where(AccountAgeSignal.account_id == account_id, AccountAgeSignal.source == source)
            .order_by(AccountAgeSignal.at.desc(), AccountAgeSignal.id.desc())
            .limit(1)
        ).first()
        if last is not None and float(last) == float(age):
            return False
        self._keep(
            actor, account_id, source, age=age, confidence=confidence, method=method, provider=provider,
            reference=reference, session=session,
        )  # fmt: skip
        return True

    @staticmethod
    def _band_of(band: str | None, age: float | None, birth_date: dt.date | None) -> str:
        """The band a signal says: a band, or the band of an age or a birth date (with both, they must agree)."""
        derived = None
        if birth_date is not None:
            today = utcnow().date()
            if birth_date > today:
                raise _invalid("birth_date is in the future")
            if age_on(birth_date, today) > 130:
                raise _invalid("birth_date is more than 130 years ago")
            derived = band_for_age(age_on(birth_date, today))
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
        return band

    @staticmethod
    def _lock(session: Session, account_id: str) -> None:
        """One writer per account at a time, so a resolution sees every signal committed before it."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:c, hashtext(:a))"), {"c": _LOCK_CLASS, "a": account_id})
        else:
            lock_writes(session)

    def _resolve(self, session: Session, account_id: str) -> ResolvedAge:
        """Resolve the account from its signals, write its row, and put it in the cache once committed."""
        signals = list(session.scalars(select(AccountAgeSignal).where(AccountAgeSignal.account_id == account_id)))
        r = resolve(account_id, signals, buffer_years=self.estimation_buffer)
        now = utcnow()
        values = {
            "account_id": account_id,
            "band": r.band,
            "rule": r.rule,
            "signal_id": r.signal_id,
            "resolved_at": now,
            "changes_at": r.changes_at,
            "sender_band": r.sender_band,
            "age_conflict": r.age_conflict,
        }
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = insert(AccountAge).values(**values)
        session.execute(stmt.on_conflict_do_update(index_elements=["account_id"], set_=values))
        resolved = ResolvedAge(account_id, r.band, r.rule, r.signal_id, now, r.changes_at, r.sender, r.age_conflict)
        event.listen(session, "after_commit", lambda _s: self.cache.put(resolved), once=True)
        return resolved

    # ---------------------------------------------------------------- reading

    @staticmethod
    def _from_row(account_id: str, row: AccountAge | None) -> ResolvedAge:
        if row is None:
            return ResolvedAge(account_id, "unknown", "none")
        return ResolvedAge(
            account_id, row.band, row.rule, row.signal_id, row.resolved_at, row.changes_at, row.sender_band,
            bool(row.age_conflict),
        )  # fmt: skip

    def bands_resolved(self, account_ids: Iterable[str]) -> dict[str, ResolvedAge]:
        """Each account's resolution: from the cache, the rest in one query (and resolved again where a
        birthday has changed a band since)."""
        account_ids = list(account_ids)
        out: dict[str, ResolvedAge] = {}
        missing = []
        for a in account_ids:
            hit = self.cache.get(a)
            if hit is not None:
                out[a] = hit
            elif a not in out:
                missing.append(a)
        if missing or self.cache.refresh_due():
            missing += [a for a in self.cache.stale() if a not in missing]  # read again with this lookup
        if not missing:
            return out
        asked = set(account_ids)
        now = utcnow()
        due = []
        with self.db.session() as s:
            for i in range(0, len(missing), 500):
                chunk = missing[i : i + 500]
                rows = {r.account_id: r for r in s.scalars(select(AccountAge).where(AccountAge.account_id.in_(chunk)))}
                for a in chunk:
                    row = rows.get(a)
                    if row is not None and row.changes_at is not None and row.changes_at <= now:
                        due.append(a)
                        continue
                    out[a] = self._from_row(a, row)
                    self.cache.put(out[a])
        for a in due:
            out[a] = self.refresh(a)
        return {a: r for a, r in out.items() if a in asked}

    def cached(self, account_ids: Iterable[str]) -> dict[str, ResolvedAge] | None:
        """Each account's resolution if every one is in the cache and no batch re-read is due, else None (nothing
        read): lets a caller on an event loop answer from memory and hand anything else to a thread."""
        if self.cache.refresh_due():
            return None
        out = {}
        for a in account_ids:
            hit = self.cache.get(a)
            if hit is None:
                return None
            out[a] = hit
        return out

    def bands(self, account_ids: Iterable[str]) -> dict[str, str]:
        """``{account_id: band}`` for many accounts at once (one query for those not cached)."""
        return {a: r.band for a, r in self.bands_resolved(account_ids).items()}

    def resolved(self, account_id: str) -> ResolvedAge:
        """The account's band (``unknown`` with rule ``none`` when nothing is known)."""
        hit = self.cache.get(account_id)  # the hot path: one dictionary read
        return hit if hit is not None else self.bands_resolved([account_id])[account_id]

    def band(self, account_id: str | None) -> str:
        """The account's band; ``unknown`` for no account. (The pipeline's :class:`AgeLookup`.)"""
        return self.resolved(account_id).band if account_id else "unknown"

    def refresh(self, account_id: str) -> ResolvedAge:
        """Resolve the account again from its signals (a band that a birthday has changed)."""
        with self.db.session() as s:
            self._lock(s, account_id)
            if s.get(AccountAge, account_id) is None:
                return ResolvedAge(account_id, "unknown", "none")
            return self._resolve(s, account_id)

    def signals(self, account_id: str, limit: int = MAX_SIGNALS_SHOWN) -> list[dict]:
        """The account's signals, newest first (the latest ``limit``; resolution always weighs them all)."""
        today = utcnow().date()
        with self.db.session() as s:
            rows = s.scalars(
                select(AccountAgeSignal)
                .where(AccountAgeSignal.account_id == account_id)
                .order_by(AccountAgeSignal.at.desc(), AccountAgeSignal.id.desc())
                .limit(limit)
            )
            return [signal_dict(r, today) for r in rows]

    def show(self, account_id: str) -> dict:
        """The account's band, the rule and signal that decided, and every signal (newest first)."""
        check_account(account_id)
        resolved = self.resolved(account_id)
        signals = self.signals(account_id)
        deciding = next((x for x in signals if x["id"] == resolved.signal_id), None)
        return {**resolved.to_dict(), "signal": deciding, "signals": signals}

    def list(self, *, band: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        """Accounts with a resolved band, most recently resolved first; ``band`` filters. Bands due to change
        by a birthday are resolved again first, so the filter sees today's bands."""
        if band is not None and band not in BANDS:
            raise _invalid(f"band must be one of {', '.join(BANDS)}")
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            raise SafeholdError("request.invalid_limit", f"limit must be between 1 and {MAX_LIMIT}, offset >= 0.")
        self.refresh_due()
        conds = [AccountAge.band == band] if band else []
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(AccountAge).where(*conds))
            rows = s.scalars(
                select(AccountAge)
                .where(*conds)
                .order_by(AccountAge.resolved_at.desc(), AccountAge.account_id)
                .limit(limit)
                .offset(offset)
            ).all()
            accounts = [self._from_row(r.account_id, r).to_dict() for r in rows]
        return {"accounts": accounts, "total": total, "limit": limit, "offset": offset}

    def refresh_due(self, limit: int = 1000) -> int:
        """Resolve again up to ``limit`` accounts whose ``changes_at`` has passed; returns how many."""
        with self.db.session() as s:
            due = s.scalars(select(AccountAge.account_id).where(AccountAge.changes_at <= utcnow()).limit(limit)).all()
        for account_id in due:
            self.refresh(account_id)
        return len(due)
