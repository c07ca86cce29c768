"""The contact policy as a service: the operator's saved policy, hot-reloaded, and checks that stay in memory.

A check sits in the platform's messaging path, so it must not query the database. Each process keeps three things:

- **the active policy**, compiled. At most every ``SAFEHOLD_CONTACT_POLICY_TTL`` seconds (default 2) a check reads
  the active version number (one indexed row); only a new version is read and compiled. A policy saved in one
  process is therefore used by every other within that many seconds, and at once by the process that saved it.
- **bands**, per account, for ``SAFEHOLD_CONTACT_CACHE_TTL`` seconds (default 30), at most
  ``SAFEHOLD_CONTACT_CACHE_ACCOUNTS`` of them (least recently used dropped first), expired ones re-read in batches
  (:class:`BandCache`): a newly recorded band is used within that many seconds and about one more.
- **risk**: the accounts with open grooming cases (source ``grooming``, or any case of category ``grooming`` or
  ``sextortion``) and open user-report cases, counted per account in one grouped query, refreshed every
  ``SAFEHOLD_CONTACT_CACHE_TTL`` seconds (bounded by the same number of accounts, most cases first). Accounts not in
  it have none, so a check never looks one up.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy import bindparam, func, or_, select, update

from safehold.audit import AuditService
from safehold.errors import SafeholdError
from safehold.safety.contact import (
    DEFAULT_POLICY,
    KINDS,
    NO_RISK,
    CompiledPolicy,
    Policy,
    Relationship,
    Risk,
    account_age_days,
    default_policy,
)
from safehold.store.db import Database
from safehold.store.models import AccountAge, Case, ContactPolicy, iso, utcnow

#: Cases that make a sender a grooming risk: the grooming detector's, and any case classified as grooming.
GROOMING_SOURCES = ("grooming",)
GROOMING_CATEGORIES = ("grooming", "sextortion")
REPORT_SOURCE = "user_report"
MAX_ACCOUNT_ID = 128
#: Largest policy document accepted (JSON bytes).
MAX_POLICY_BYTES = 256 * 1024

PromptFor = Callable[[str, str], dict | None]


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("contact.invalid", message, status=422)


def parse_policy(doc: object) -> Policy:
    """``doc`` validated as a policy, or 422 ``contact.invalid_policy`` naming every problem (``detail.errors``:
    where, what)."""
    if not isinstance(doc, dict):
        raise SafeholdError("contact.invalid_policy", "A contact policy is a JSON object.", status=422)
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]) or "(policy)", "msg": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors(include_url=False)
        ]
        first = errors[0]
        raise SafeholdError(
            "contact.invalid_policy",
            f"The contact policy is not valid: {first['loc']}: {first['msg']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            status=422,
            detail={"errors": errors},
        ) from None


_BANDS_OF = select(AccountAge.account_id, AccountAge.band).where(
    AccountAge.account_id.in_(bindparam("ids", expanding=True))
)


def stored_bands(db: Database, account_ids: list[str]) -> dict[str, str]:
    """The resolved bands of these accounts in one query (``unknown`` for an account with none): the age book's
    table, read many at a time (a plain connection: the ORM session would triple the cost of a lookup)."""
    with db.engine.connect() as c:
        found = dict(c.execute(_BANDS_OF, {"ids": account_ids}).all())
    return {a: found.get(a, "unknown") for a in account_ids}


class BandCache:
    """A bounded, expiring per-process memo of account bands, filled by ``lookup(ids) -> {id: band}``.

    An account never seen is looked up at once (with the check's other account, in one query). An expired entry is
    still answered, and queued: the queue is re-read in one query with the next lookup, or at most every
    ``REFRESH_EVERY`` seconds, so a busy process re-reads its accounts in a few batches a second rather than in a
    query per check, and a band is used at most ``ttl`` plus about a second after it changed. (The small adapter
    where a cached bulk lookup of the age book plugs in.)
    """

    REFRESH_EVERY = 1.0
    MAX_BATCH = 500

    def __init__(self, lookup: Callable[[list[str]], dict[str, str]], ttl: float, size: int):
        self.lookup = lookup
        self.ttl = ttl
        self.size = size
        self._memo: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._stale: dict[str, None] = {}  # an ordered set
        self._refresh_at = float("-inf")
        self._lock = threading.Lock()

    def bands(self, *account_ids: str) -> list[str]:
        now = time.monotonic()
        found: dict[str, str] = {}
        missing: list[str] = []
        for a in account_ids:
            hit = self._memo.get(a)
            if hit is None:
                missing.append(a)
                continue
            found[a] = hit[0]
            if hit[1] <= now:
                self._stale[a] = None
        if missing or (self._stale and now >= self._refresh_at):
            with self._lock:
                batch = list(dict.fromkeys(missing))
                batch += [a for a in itertools.islice(self._stale, self.MAX_BATCH) if a not in batch]
            fresh = self.lookup(batch)
            with self._lock:
                for a, band in fresh.items():
                    self._memo[a] = (band, now + self.ttl)
                    self._memo.move_to_end(a)
                    self._stale.pop(a, None)
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
                self._refresh_at = now + self.REFRESH_EVERY
            found.update((a, fresh[a]) for a in account_ids if a in fresh)
        return [found[a] for a in account_ids]


class ContactService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        bands_of: Callable[[list[str]], dict[str, str]],
        *,
        policy_ttl: float = 2.0,
        cache_ttl: float = 30.0,
        cache_accounts: int = 200_000,
        prompt_for: PromptFor | None = None,
    ):
        self.db = db
        self.audit = audit
        self.bands = BandCache(bands_of, cache_ttl, cache_accounts)
        self.prompt_for = prompt_for
        self.policy_ttl = policy_ttl
        self.cache_ttl = cache_ttl
        self.cache_accounts = cache_accounts
        self._lock = threading.Lock()
        self._policy: tuple[int, CompiledPolicy] | None = None
        self._policy_checked = float("-inf")
        self._risk: dict[str, Risk] = {}
        self._risk_loaded = float("-inf")

    # ------------------------------------------------------------------------------------------------ checks

    def check(
        self,
        sender: str,
        recipient: str,
        kind: str,
        *,
        mutual_contacts: int = 0,
        prior_conversation: bool = False,
        recipient_follows_sender: bool = False,
        sender_created_at: dt.datetime | None = None,
        locale: str = "en",
    ) -> dict:
        """The decision for one interaction; ``contact.invalid`` (422) for ids, a kind or counts out of bounds."""
        for name, account in (("sender", sender), ("recipient", recipient)):
            if not account or len(account) > MAX_ACCOUNT_ID:
                raise _invalid(f"{name} must be 1 to {MAX_ACCOUNT_ID} characters")
        if kind not in KINDS:
            raise _invalid(f"kind must be one of {', '.join(KINDS)}")
        if not 0 <= mutual_contacts <= 1_000_000:
            raise _invalid("mutual_contacts must be in [0, 1000000]")
        version, policy = self.current()
        sender_band, recipient_band = self.bands.bands(sender, recipient)
        rel = Relationship(mutual_contacts, prior_conversation, recipient_follows_sender)
        d = policy.decide(
            sender_band,
            recipient_band,
            kind,
            rel,
            account_age_days(sender_created_at, utcnow()),
            self.risk(sender),
        )
        out = {
            "decision": d.decision,
            "reason": d.reason,
            "rule": d.rule,
            "prompt": d.prompt,
            "relaxed": d.relaxed,
            "sender_band": sender_band,
            "recipient_band": recipient_band,
            "policy_version": version,
        }
        if d.prompt is not None and self.prompt_for is not None:
            text = self.prompt_for(d.prompt, locale)
            if text is not None:
                out["prompt_text"] = text
        return out

    def risk(self, account_id: str) -> Risk:
        if time.monotonic() - self._risk_loaded > self.cache_ttl:
            self._load_risk()
        return self._risk.get(account_id, NO_RISK)

    def _load_risk(self) -> None:
        with self._lock:
            if time.monotonic() - self._risk_loaded <= self.cache_ttl:
                return  # another thread just did
            grooming = or_(Case.source.in_(GROOMING_SOURCES), Case.category.in_(GROOMING_CATEGORIES))
            reports = Case.source == REPORT_SOURCE
            risk: dict[str, Risk] = {}
            with self.db.session() as s:
                for which, cond in (("grooming", grooming), ("reports", reports)):
                    n = func.count()
                    rows = s.execute(
                        select(Case.account_id, n)
                        .where(Case.status != "closed", Case.account_id.is_not(None), cond)
                        .group_by(Case.account_id)
                        .order_by(n.desc())
                        .limit(self.cache_accounts)
                    )
                    for account, count in rows:
                        was = risk.get(account, NO_RISK)
                        risk[account] = Risk(count, was.reports) if which == "grooming" else Risk(was.grooming, count)
            self._risk = risk
            self._risk_loaded = time.monotonic()

    # ------------------------------------------------------------------------------------------------ policy

    def current(self) -> tuple[int, CompiledPolicy]:
        """The active policy's version (0: the built-in default, never saved) and the policy, compiled."""
        cached = self._policy
        if cached is not None and time.monotonic() - self._policy_checked < self.policy_ttl:
            return cached
        with self._lock:
            with self.db.session() as s:
                version = s.scalar(self._active_version()) or 0
            if self._policy is None or self._policy[0] != version:
                self._policy = (version, self._compile(version))
            self._policy_checked = time.monotonic()
            return self._policy

    @staticmethod
    def _active_version():
        return select(func.max(ContactPolicy.version)).where(ContactPolicy.active.is_(True))

    def _compile(self, version: int) -> CompiledPolicy:
        if version == 0:
            return CompiledPolicy(default_policy())
        with self.db.session() as s:
            row = s.get(ContactPolicy, version)
            return CompiledPolicy(Policy.model_validate(row.policy))

    def show(self) -> dict:
        """The active policy (as saved, validated) with its version, author and time."""
        version, compiled = self.current()
        out = {"version": version, "author": None, "created_at": None, "builtin": version == 0}
        if version:
            with self.db.session() as s:
                row = s.get(ContactPolicy, version)
                out.update(author=row.author, created_at=iso(row.created_at))
        return {**out, "policy": compiled.policy.model_dump(mode="json", exclude_none=True)}

    def history(self, limit: int = 50) -> list[dict]:
        with self.db.session() as s:
            rows = s.scalars(select(ContactPolicy).order_by(ContactPolicy.version.desc()).limit(limit))
            return [
                {"version": r.version, "author": r.author, "created_at": iso(r.created_at), "active": r.active}
                for r in rows
            ]

    def validate(self, doc: object) -> Policy:
        return parse_policy(doc)

    def save(self, doc: object, actor: str, *, action: str = "contact.policy_set") -> dict:
        """Validate ``doc`` and make it the active policy (a new version), audited; every process uses it within
        ``policy_ttl`` seconds, this one at once."""
        policy = parse_policy(doc)
        stored = policy.model_dump(mode="json", exclude_none=True)
        with self.db.session() as s:
            s.execute(update(ContactPolicy).where(ContactPolicy.active.is_(True)).values(active=False))
            row = ContactPolicy(policy=stored, author=actor, created_at=utcnow(), active=True)
            s.add(row)
            s.flush()
            version = row.version
            self.audit.record(s, actor, action, f"contact_policy:{version}", {"rules": len(policy.rules)})
        with self._lock:
            self._policy = (version, CompiledPolicy(policy))
            self._policy_checked = time.monotonic()
        return self.show()

    def reset(self, actor: str) -> dict:
        """Save the built-in default as a new version (the history keeps what was there)."""
        return self.save(DEFAULT_POLICY, actor, action="contact.policy_reset")
