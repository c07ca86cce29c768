"""The operator's policy for each classifier's hits: its threshold, whether a hit needs an age signal to become a
case, what it becomes without one, whether automatic actions may run for it, and the category it takes together
with an age signal (docs/classifiers.md, "Classifier policy: scores and age signals").

A classifier guesses. A guess that content is explicit is no finding of abuse — such imagery is legal between
adults — until something says a child is involved: the uploader or the depicted person is a suspected minor, the
recipient is a minor, a grooming conversation is attached. So, by default:

- a classifier whose labels are all child-abuse categories (``csam``, ``A1`` … ``B2``) opens a case for each hit,
  alone (``needs_age_signal`` false);
- any other classifier (``explicit``, …) needs an age signal (``needs_age_signal`` true): with one, its hit opens a
  case in ``category`` (``csam`` — explicit imagery of a suspected minor is apparent CSAM not yet classified), or in
  ``grooming`` when the only signal is that the recipient is a minor (:func:`age_category`); without one, ``alone``
  decides: ``ignore`` (the default: the score is noted on whatever else the submission records, and
  no case is opened for it) or ``case`` (a case in the classifier's own label);
- a classifier may declare its own default (:attr:`safehold.classifiers.base.Classifier.needs_age_signal`);
- no hit runs an automatic action unless the operator sets ``auto_action`` for that classifier, explicitly (audited).

Policies live in the ``classifier_policies`` table (a column left empty takes the default). Every process reads
them through :class:`ClassifierPolicies`, which keeps them for :data:`CACHE_SECONDS`: a change made by one process
is seen at once by that process and within seconds by every other (API workers, background workers, the CLI).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select

from safehold.audit import AuditService
from safehold.banks.formats import normalize_category
from safehold.cases.taxonomy import CLASSIFICATIONS
from safehold.classifiers.base import Classifier
from safehold.classifiers.registry import Classifiers
from safehold.errors import NotFound, SafeholdError
from safehold.review import outcomes
from safehold.store.db import Database
from safehold.store.models import ClassifierPolicy, iso, utcnow

#: What a hit that needs an age signal and has none becomes.
ALONE = ("ignore", "case")
#: Labels that are child-abuse categories: a hit on them needs no age signal by default.
CHILD_ABUSE_LABELS = frozenset(("csam", *CLASSIFICATIONS))
#: The category a hit combined with an age signal gets by default: apparent CSAM not yet classified.
DEFAULT_CATEGORY = "csam"
#: The category of a hit whose only age signal is ``recipient_minor``: explicit imagery sent to a child — most often
#: the sender's own picture, showing no minor — is child sexual exploitation (exposing a child to sexual material is
#: a recognised grooming step), not apparent CSAM.
EXPOSURE_CATEGORY = "grooming"
#: How long a process keeps the policies it read before reading them again.
CACHE_SECONDS = 5.0
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: The settings of a policy, as the API and the CLI name them.
FIELDS = ("threshold", "needs_age_signal", "alone", "auto_action", "category")


@dataclass(frozen=True)
class Policy:
    """One classifier's policy in force: the stored settings over the classifier's defaults."""

    classifier: str
    threshold: float
    needs_age_signal: bool
    alone: str
    auto_action: bool
    category: str

    def to_dict(self) -> dict:
        return asdict(self)


def defaults(cls: type[Classifier] | Classifier) -> Policy:
    """The policy of a classifier nobody has configured (see the module docs for the rule)."""
    needs = cls.needs_age_signal
    if needs is None:
        needs = not all(label in CHILD_ABUSE_LABELS for label in cls.labels)
    return Policy(
        classifier=cls.name,
        threshold=float(cls.threshold),
        needs_age_signal=needs,
        alone="ignore" if needs else "case",
        auto_action=False,
        category=DEFAULT_CATEGORY,
    )


def apply(base: Policy, row: ClassifierPolicy | None) -> Policy:
    """``base`` with the stored settings of ``row`` over it. ``alone`` follows ``needs_age_signal`` unless set."""
    if row is None:
        return base
    needs = base.needs_age_signal if row.needs_age_signal is None else row.needs_age_signal
    return Policy(
        classifier=base.classifier,
        threshold=base.threshold if row.threshold is None else row.threshold,
        needs_age_signal=needs,
        alone=row.alone or ("ignore" if needs else "case"),
        auto_action=bool(row.auto_action),
        category=row.category or base.category,
    )


def _invalid(message: str, field: str) -> SafeholdError:
    return SafeholdError("classifier.invalid_policy", message, status=422, detail={"field": field})


def check_changes(changes: dict) -> dict:
    """Validate a (partial) policy change; a ``None`` value puts that setting back to its default."""
    out = {}
    for key, value in changes.items():
        if key not in FIELDS:
            raise _invalid(f"Unknown policy setting {key!r}; settings are {', '.join(FIELDS)}.", key)
        if value is None:
            out[key] = False if key == "auto_action" else None
        elif key == "threshold":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not 0 < value <= 1:
                raise _invalid("threshold must be a number above 0 and at most 1.", key)
            out[key] = float(value)
        elif key in ("needs_age_signal", "auto_action"):
            if not isinstance(value, bool):
                raise _invalid(f"{key} must be true or false.", key)
            out[key] = value
        elif key == "alone":
            if value not in ALONE:
                raise _invalid(f"alone must be one of {', '.join(ALONE)}.", key)
            out[key] = value
        else:
            try:
                out[key] = normalize_category(value if isinstance(value, str) else None)
            except SafeholdError as exc:
                raise _invalid(f"category: {exc.message}", key) from None
            if out[key] is None:
                raise _invalid("category must be a taxonomy code (csam, A1, …) or a slug.", key)
    return out


class ClassifierPolicies:
    """The enabled classifiers' policies: read (cached, see the module docs) by the pipeline, listed and changed by
    the API, the console and the CLI."""

    def __init__(self, db: Database, audit: AuditService | None, classifiers: Classifiers, ttl: float = CACHE_SECONDS):
        self.db = db
        self.audit = audit
        self.classifiers = classifiers
        self.ttl = ttl
        self._rows: dict[str, dict] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def _classifier(self, name: str) -> Classifier:
        for c in self.classifiers.enabled:
            if c.name == name:
                return c
        raise NotFound(
            "classifier.not_found",
            f"No enabled classifier {name!r} (SAFEHOLD_CLASSIFIERS names the ones that run).",
            detail={"enabled": [c.name for c in self.classifiers.enabled]},
        )

    def _stored(self) -> dict[str, dict]:
        """The stored rows, as plain values, read again when older than the cache's time to live."""
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self.ttl:
                with self.db.session() as s:
                    rows = s.scalars(select(ClassifierPolicy)).all()
                    self._rows = {r.classifier: _row_dict(r) for r in rows}
                self._read_at = now
            return self._rows

    def policy(self, name: str) -> Policy:
        """The policy in force for the enabled classifier ``name`` (``classifier.not_found`` otherwise)."""
        return self._policy(self._classifier(name))

    def _policy(self, c: Classifier) -> Policy:
        row = self._stored().get(c.name)
        return apply(defaults(c), ClassifierPolicy(**row) if row else None)

    def for_hits(self) -> dict[str, Policy]:
        """Every enabled classifier's policy, by name (what the pipeline reads per submission with hits)."""
        return {c.name: self._policy(c) for c in self.classifiers.enabled}

    def describe(self, name: str) -> dict:
        c = self._classifier(name)
        row = self._stored().get(name) or {}
        return {
            "name": c.name,
            "description": c.description,
            "version": c.version,
            "takes": sorted(c.takes),
            "labels": list(c.labels),
            "policy": self._policy(c).to_dict(),
            "defaults": defaults(c).to_dict(),
            "set": {k: row[k] for k in FIELDS if row.get(k) is not None and (k != "auto_action" or row[k])},
            "updated_by": row.get("updated_by"),
            "updated_at": iso(row.get("updated_at")),
        }

    def list(self) -> list[dict]:
        """The enabled classifiers with their policies, in the order ``SAFEHOLD_CLASSIFIERS`` names them."""
        return [self.describe(c.name) for c in self.classifiers.enabled]

    def change(self, name: str, actor: str, changes: dict) -> dict:
        """Change some settings of ``name``'s policy (``None``: back to the default); audited as
        ``classifier.policy`` with the settings before and after. Returns :meth:`describe`."""
        c = self._classifier(name)
        if not changes:
            raise _invalid("Give at least one setting to change: " + ", ".join(FIELDS) + ".", "body")
        values = check_changes(changes)
        with self.db.session() as s:
            row = s.get(ClassifierPolicy, name, with_for_update=True)
            if row is None:
                row = ClassifierPolicy(classifier=name, auto_action=False)
                s.add(row)
            before = apply(defaults(c), row).to_dict()
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_by, row.updated_at = actor, utcnow()
            s.flush()
            after = apply(defaults(c), row).to_dict()
            if self.audit is not None:
                detail = {"changed": values, "before": before, "after": after}
                self.audit.record(s, actor, "classifier.policy", f"classifier:{name}", detail)
        with self._lock:
            self._read_at = None  # this process sees its own change at once
        return self.describe(name)

    def precision(self, name: str) -> dict:
        """Reviewed hits and precision per label and threshold (:func:`safehold.review.outcomes.precision`), the
        policy's threshold among them; a classifier no longer enabled still has its history."""
        if not _NAME.match(name):
            raise NotFound("classifier.not_found", f"No classifier {name!r}.")
        enabled = {c.name: c for c in self.classifiers.enabled}
        current = self._policy(enabled[name]).threshold if name in enabled else None
        return outcomes.precision(self.db, name, current)


def _row_dict(r: ClassifierPolicy) -> dict:
    return {
        "classifier": r.classifier,
        "threshold": r.threshold,
        "needs_age_signal": r.needs_age_signal,
        "alone": r.alone,
        "auto_action": r.auto_action,
        "category": r.category,
        "updated_by": r.updated_by,
        "updated_at": r.updated_at,
    }


# ---------------------------------------------------------------------------------------- applying it

#: Why a hit has an age signal. The doors give ``depicted_minor`` (the platform or a user says the person shown is
#: a minor), ``recipient_minor`` (the media was sent to a minor) and ``grooming_conversation`` (it came in a
#: conversation with an open grooming alert or case); the pipeline adds ``uploader_minor`` from the uploader's band.
AGE_REASONS = ("uploader_minor", "depicted_minor", "recipient_minor", "grooming_conversation")
#: Reasons that put a child in contact with the content's sender now: with a high score the case is P0 (the
#: ``minor_at_risk`` urgency rule, docs/cases.md). ``depicted_minor`` alone makes the case apparent CSAM (its
#: category's severity), not P0: the picture may be old and the child not reachable.
CONTACT_REASONS = ("uploader_minor", "recipient_minor", "grooming_conversation")


@dataclass(frozen=True)
class Judged:
    """What policy made of the classifiers' scores: the hits that become signals, those of them whose automatic
    policies run (``auto_action``), and the hits that needed an age signal, had none and are only noted."""

    signals: list
    auto: list
    noted: list[dict]


def age_category(policy: Policy, reasons: Sequence[str]) -> str:
    """The category of a hit of a classifier that needs an age signal, given one (``reasons``).

    A reason that a minor may be shown — the uploader is one (possibly self-generated imagery), the platform says
    the person depicted is one, or the image came in a grooming conversation (conservatively: it may be the
    child's) — takes the policy's ``category`` (``csam``). ``recipient_minor`` alone says only that a child got
    the image, usually an adult's own picture: :data:`EXPOSURE_CATEGORY` (``grooming``). Either way the case is
    ``minor_at_risk`` (:data:`CONTACT_REASONS`)."""
    if set(reasons) == {"recipient_minor"}:
        return EXPOSURE_CATEGORY
    return policy.category
