"""The contact policy as a service: the operator's saved policy, hot-reloaded, and checks that stay in memory.

A check sits in the platform's messaging path, so it must not query the database. Each process keeps three things:

- **the active policy**, compiled. At most every ``SAFEHOLD_CONTACT_POLICY_TTL`` seconds (default 2) a check reads
  the active version number (one indexed row); only a new version is read and compiled. A policy saved in one
  process is therefore used by every other within that many seconds, and at once by the process that saved it.
- **bands**, from the age book's own in-process cache (:meth:`safehold.safety.ages.AgeBook.bands_resolved`: a band
  recorded in this process is used at once, one recorded in another within ``SAFEHOLD_AGE_CACHE_TTL_SECONDS``).
  The sender is judged by its band *as a sender* (``sender_band``, with its ``age_conflict``), the recipient by
  its protective band.
- **risk**: the accounts with open grooming cases (source ``grooming``, or any case of category ``grooming`` or
  ``sextortion``) and open user-report cases, counted per account in one grouped query, refreshed every
  ``SAFEHOLD_CONTACT_CACHE_TTL`` seconds (bounded by the same number of accounts, most cases first). Accounts not in
  it have none, so a check never looks one up.

When all three are fresh in memory (:meth:`ContactService.in_memory`) a check touches no database and an event loop
may run it directly; otherwise (a cache miss, the policy's version due for a re-read, the risk due for a reload)
the caller runs it in a worker thread (``safehold.api.routes.safety.answer_check``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy import func, or_, select, update

from safehold.audit import AuditService
from safehold.errors import SafeholdError
from safehold.safety.ages import ResolvedAge, account_problem
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
from safehold.store.models import Case, ContactPolicy, iso, utcnow

#: Cases that make a sender a grooming risk: the grooming detector's, and any case classified as grooming.
GROOMING_SOURCES = ("grooming",)
GROOMING_CATEGORIES = ("grooming", "sextortion")
REPORT_SOURCE = "user_report"
#: Largest policy document accepted (JSON bytes).
MAX_POLICY_BYTES = 256 * 1024

PromptFor = Callable[[str, str], dict | None]


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("contact.invalid", message, status=422)


def parse_policy(doc: object) -> Policy:
    """``doc`` validated as a policy, or 422 ``contact.invalid_policy`` naming its problems (``detail.errors``:
    where, what). Validation runs in two passes: every problem of structure and value (a missing field, a wrong
    type, an unknown band) at once; the problems between fields (a friction without a prompt, two rules of one
    name) only of a rule — or a policy — whose fields are all valid, so a fixed document may show new ones."""
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


class ContactService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        ages_of: Callable[[list[str]], dict[str, ResolvedAge]],
        cached_ages_of: Callable[[list[str]], dict[str, ResolvedAge] | None] = lambda _ids: None,
        *,
        policy_ttl: float = 2.0,
        cache_ttl: float = 30.0,
        cache_accounts: int = 200_000,
        prompt_for: PromptFor | None = None,
    ):
        self.db = db
        self.audit = audit
        self.ages_of = ages_of  # {account_id: ResolvedAge}, many at once (the age book's cached lookup)
        self.cached_ages_of = cached_ages_of  # the same from the cache alone, or None (nothing read)
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
            problem = account_problem(account, name)
            if problem is not None:
                raise _invalid(problem)
        if kind not in KINDS:
            raise _invalid(f"kind must be one of {', '.join(KINDS)}")
        if not 0 <= mutual_contacts <= 1_000_000:
            raise _invalid("mutual_contacts must be in [0, 1000000]")
        version, policy = self.current()
        ages = self.ages_of([sender, recipient])
        sender_band, recipient_band = ages[sender].sender_band, ages[recipient].band
        conflict = ages[sender].age_conflict
        rel = Relationship(mutual_contacts, prior_conversation, recipient_follows_sender)
        d = policy.decide(
            sender_band,
            recipient_band,
            kind,
            rel,
            account_age_days(sender_created_at, utcnow()),
            self.risk(sender),
            conflict,
        )
        out = {
            "decision": d.decision,
            "reason": d.reason,
            "rule": d.rule,
            "prompt": d.prompt,
            "relaxed": d.relaxed,
            "sender_band": sender_band,
            "recipient_band": recipient_band,
            "sender_age_conflict": conflict,
            "policy_version": version,
        }
        if d.prompt is not None and self.prompt_for is not None:
            text = self.prompt_for(d.prompt, locale)
            if text is not None:
                out["prompt_text"] = text
        return out

    def in_memory(self, sender: str, recipient: str) -> bool:
        """Whether a check of this pair would touch no database now: policy and risk fresh, both bands cached."""
        now = time.monotonic()
        return (
            self._policy is not None
            and now - self._policy_checked < self.policy_ttl
            and now - self._risk_loaded <= self.cache_ttl
            and self.cached_ages_of([sender, recipient]) is not None
        )

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
