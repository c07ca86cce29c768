"""Stored, versioned CEL rules and the named lists they read, reloaded in every process without a restart.

Every edit is a new version (``rule_versions``) with its diff to the one before; ``rules`` says which version
runs (``active_version``) and how (``status``: draft, shadow, live, disabled). Going live needs the version
approved by a second admin, not its author, unless ``SAFEHOLD_RULES_REQUIRE_APPROVAL`` is off; shadow needs no
approval (it acts on nothing). Editing a live rule writes a draft version while the approved one keeps running;
that version may run in shadow beside it (``shadow_version``), its hits recorded as shadow hits of that version and
compared with the live set, its own live version included, until it is promoted (it goes live, the shadow ends).

Hot reload, as the term lists do it (:mod:`safehold.rules.terms`): every process polls the small ``rules`` and
``rule_lists`` tables in its upkeep loop (:meth:`RuleBook.sync`); when their fingerprint changes it compiles a new
:class:`~safehold.rules.engine.RuleSet` off to the side and swaps it in one assignment. A change made in this
process is applied before the call that made it returns.

Shadow hits are buffered in memory (at most :data:`MAX_PENDING`; beyond that they are counted as dropped) and
written by the upkeep loop (:meth:`RuleBook.flush`), so a shadow rule adds no write to a detection. They enter the
buffer only when the detection's own transaction commits, after its idempotency claim (:meth:`RuleBook.record_shadow`):
a retried event finds its key claimed and adds nothing.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import threading
import time
from collections.abc import Sequence

from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from safehold.actions.service import ACTION_KINDS
from safehold.audit import AuditService
from safehold.cases.detection import DetectionSignal
from safehold.cases.taxonomy import QUEUES
from safehold.classifiers.base import Classification
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.pipeline.ages import AgeLookup, NoAges
from safehold.pipeline.rules import RuleEffect, RuleOutcome
from safehold.pipeline.service import Submission
from safehold.rules.engine import (
    MAX_LIST_ITEMS,
    MAX_STRING,
    STATUSES,
    Facts,
    Rule,
    RuleSet,
    check_effect,
    check_name,
    compile_expression,
    evaluate_one,
)
from safehold.rules.reload import HotReloaded
from safehold.store.db import Database
from safehold.store.models import Case, CaseSignal, RuleList, RuleRow, RuleShadowHit, RuleVersion, iso

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
MAX_DESCRIPTION = 4000
COMPARE_ROWS = 50_000  # shadow hits (and live rule signals) a comparison reads at most
LIST_KINDS = ("terms", "hashes", "accounts")
_SHADOW_HELD = "rules.shadow_held"  # Session.info: shadow hits waiting for the detection's transaction to commit


class RuleBook(HotReloaded):
    """The rules of this installation, compiled, and the pipeline's :class:`~safehold.pipeline.rules.RuleHook`."""

    def __init__(
        self,
        db: Database,
        audit: AuditService,
        *,
        require_approval: bool = True,
        ages: AgeLookup | None = None,
        backtest_rows: int = 100_000,
        backtest_seconds: float = 30.0,
    ):
        self.db = db
        self.audit = audit
        self.require_approval = require_approval
        self.ages = ages or NoAges()
        self.backtest_rows = backtest_rows
        self.backtest_seconds = backtest_seconds
        self._current: RuleSet | None = None
        self._reload_lock = threading.Lock()
        self._pending: list[dict] = []
        self._pending_lock = threading.Lock()
        self.dropped = 0
        self.errors: dict[str, int] = {}
        self.live_hits: dict[str, int] = {}  # live matches in this process since it started, like ``errors``

    # ---------------------------------------------------------------- the rule set

    def current(self) -> RuleSet:
        """The live and shadow rules in force, compiled."""
        return super().current()

    def _fingerprint(self) -> tuple:
        with self.db.session() as s:
            rules = s.execute(
                select(RuleRow.name, RuleRow.status, RuleRow.active_version, RuleRow.shadow_version)
            ).all()
            lists = s.execute(select(RuleList.name, RuleList.version)).all()
        return (tuple(sorted(tuple(r) for r in rules)), tuple(sorted(tuple(r) for r in lists)))

    def _built(self, value: RuleSet) -> None:
        log.info("rules compiled: %d live or shadow", len(value))

    def _build(self, fingerprint: tuple) -> RuleSet:
        with self.db.session() as s:
            lists = {r.name: r.items for r in s.scalars(select(RuleList))}
            rows = s.execute(
                select(RuleRow, RuleVersion)
                .join(RuleVersion, (RuleVersion.name == RuleRow.name) & (RuleVersion.version == RuleRow.active_version))
                .where(RuleRow.status.in_(("live", "shadow")))
            ).all()
            beside = s.execute(
                select(RuleRow, RuleVersion)
                .join(RuleVersion, (RuleVersion.name == RuleRow.name) & (RuleVersion.version == RuleRow.shadow_version))
                .where(RuleRow.status == "live", RuleRow.shadow_version.is_not(None))
            ).all()
            rules = []
            for (row, v), status in [*((r, r[0].status) for r in rows), *((r, "shadow") for r in beside)]:
                try:
                    compiled = compile_expression(v.expression, lists)
                except SafeholdError as exc:  # a list it reads was deleted since: it stops, loudly
                    log.error("rule %s v%d no longer compiles: %s", v.name, v.version, exc.message)
                    continue
                rules.append(Rule(v.name, v.version, status, v.effect, row.owner, compiled))
        return RuleSet(rules, lists, fingerprint)

    # ---------------------------------------------------------------- the pipeline's hook

    def evaluate(
        self, sub: Submission, matches: Sequence[DetectionSignal], classified: Sequence[Classification]
    ) -> RuleOutcome:
        ruleset = self.current()
        if not len(ruleset):
            return RuleOutcome()
        facts = facts_for(sub, matches, classified, self.ages)
        out = ruleset.evaluate(facts)
        for name in out.errors:
            self.errors[name] = self.errors.get(name, 0) + 1
        for h in out.live:
            self.live_hits[h.rule] = self.live_hits.get(h.rule, 0) + 1
        shadow = []
        if out.shadow:
            live = [h.rule for h in out.live]
            d = sub.detection
            shadow = [
                {
                    "rule": h.rule,
                    "version": h.version,
                    "effect": h.effect,
                    "content_id": d.content_id,
                    "account_id": d.account_id,
                    "door": (sub.source or d.source)[:32],
                    "live": live,
                    "at": dt.datetime.now(dt.UTC),
                }
                for h in out.shadow
            ]
        return RuleOutcome([RuleEffect(h.rule, h.version, h.effect) for h in out.live], shadow)

    def record_shadow(self, s: Session | None, hits: list[dict], case_id: int | None = None) -> None:
        """Buffer shadow hits for :meth:`flush`: when ``s`` commits (the detection's transaction, after its
        idempotency claim), or at once without ``s``. A transaction rolled back drops what it held, so a group
        commit that runs a batch again keeps each hit once."""
        if not hits:
            return
        hits = [{**h, "case_id": case_id} for h in hits]
        if s is None:
            self._buffer(hits)
            return
        held = s.info.get(_SHADOW_HELD)
        if held is None:
            held = s.info[_SHADOW_HELD] = []
            event.listen(s, "after_commit", self._committed, once=True)
            event.listen(s, "after_rollback", self._rolled_back, once=True)
        held.extend(hits)

    def _committed(self, s: Session) -> None:
        self._buffer(s.info.pop(_SHADOW_HELD, None) or [])

    @staticmethod
    def _rolled_back(s: Session) -> None:
        s.info.pop(_SHADOW_HELD, None)

    def _buffer(self, hits: list[dict]) -> None:
        with self._pending_lock:
            room = max(0, MAX_PENDING - len(self._pending))
            self._pending.extend(hits[:room])
            self.dropped += len(hits) - min(room, len(hits))

    def flush(self) -> int:
        """Write the buffered shadow hits; returns how many."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if pending:
            with self.db.session() as s:
                s.add_all(RuleShadowHit(**p) for p in pending)
        return len(pending)

    # ---------------------------------------------------------------- reading

    def all_rules(self) -> list[dict]:
        """Every rule's summary, with ``shadow_hits``: what it recorded in shadow, all time."""
        self.flush()
        with self.db.session() as s:
            rows = s.scalars(select(RuleRow).order_by(RuleRow.name)).all()
            shadow = dict(s.execute(select(RuleShadowHit.rule, func.count()).group_by(RuleShadowHit.rule)).all())
            return [{**self._summary(s, r), "shadow_hits": shadow.get(r.name, 0)} for r in rows]

    def show(self, name: str) -> dict:
        with self.db.session() as s:
            row = _row(s, name)
            versions = s.scalars(select(RuleVersion).where(RuleVersion.name == name).order_by(RuleVersion.version))
            return {**self._summary(s, row), "versions": [_version_dict(v) for v in versions]}

    def diff(self, name: str, a: int | None = None, b: int | None = None) -> dict:
        """The diff between two versions (default: the newest and the one before it)."""
        with self.db.session() as s:
            row = _row(s, name)
            b = b or row.version
            a = a or max(b - 1, 1)
            va, vb = _version(s, name, a), _version(s, name, b)
            return {"name": name, "from": a, "to": b, "diff": _diff(va.expression, va.effect, vb.expression, vb.effect)}

    def shadow_hits(self, name: str, limit: int = 100) -> dict:
        """What a shadow rule would have done, newest first, and how often the live set agreed."""
        self.flush()
        limit = max(1, min(int(limit), 1000))
        with self.db.session() as s:
            _row(s, name)
            total = s.scalar(select(func.count()).select_from(RuleShadowHit).where(RuleShadowHit.rule == name))
            hits = s.scalars(
                select(RuleShadowHit).where(RuleShadowHit.rule == name).order_by(RuleShadowHit.id.desc()).limit(limit)
            ).all()
            return {
                "name": name,
                "total": total,
                "hits": [_hit_dict(h) for h in hits],
            }

    def compare(self, name: str, days: int = 7, examples: int = 20, version: int | None = None) -> dict:
        """A shadow rule beside the live set over the last ``days`` days: how often it would have acted, how often
        a live rule matched the same detection too (overlap) or none did, the detections it would have opened a
        case for where none was opened, which live rules it overlapped with, and what the live rules opened
        meanwhile. Reads at most :data:`COMPARE_ROWS` shadow hits and as many rule signals (``truncated``).

        ``version``: the shadow hits of that version only; by default the version now in shadow (a live rule's
        ``shadow_version``, or a shadow rule's running one), every version when none is. For a version shadowing
        its own live version, ``with_own_live`` counts the detections both matched, and ``live_version_only`` the
        cases the live version opened or raised since the version's first hit in the period that it did not
        match (it may not have run before that)."""
        if not isinstance(days, int) or not 1 <= days <= 365:
            raise SafeholdError("rules.invalid_backtest", "A comparison covers 1 to 365 days.")
        examples = max(1, min(int(examples), 100))
        self.flush()
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        with self.db.session() as s:
            row = _row(s, name)
            if version is None:
                version = row.shadow_version if row.status == "live" else None
                version = row.active_version if row.status == "shadow" else version
            q = select(RuleShadowHit).where(RuleShadowHit.rule == name, RuleShadowHit.at >= since)
            if version is not None:
                q = q.where(RuleShadowHit.version == version)
            hits = s.scalars(q.order_by(RuleShadowHit.id.desc()).limit(COMPARE_ROWS)).all()
            opened = s.scalars(
                select(CaseSignal)
                .where(CaseSignal.signal_type == "rule", CaseSignal.at >= since)
                .order_by(CaseSignal.id.desc())
                .limit(COMPARE_ROWS)
            ).all()
            truncated = len(hits) >= COMPARE_ROWS or len(opened) >= COMPARE_ROWS
            overlap, alone, unopened, with_live = [], [], [], {}
            for h in hits:
                (overlap if h.live else alone).append(h)
                for other in h.live:
                    with_live[other] = with_live.get(other, 0) + 1
                if h.effect.get("type") == "open_case" and h.case_id is None:
                    unopened.append(h)
            live_cases: dict[str, set] = {}
            own_live: set = set()
            first = min((h.at for h in hits), default=None)
            for sig in opened:
                rule = (sig.detail or {}).get("rule")
                if isinstance(rule, str):
                    live_cases.setdefault(rule, set()).add(sig.case_id)
                    if rule == name and first is not None and sig.at >= first:
                        own_live.add(sig.case_id)
            live_version = row.active_version if row.status == "live" else None
            return {
                "name": name,
                "status": row.status,
                "version": version,
                "live_version": live_version,
                "with_own_live": sum(1 for h in hits if name in h.live),
                "live_version_only": len(own_live - {h.case_id for h in hits}) if live_version is not None else 0,
                "days": days,
                "hits": len(hits),
                "overlap": len(overlap),
                "shadow_only": len(alone),
                "would_open": len(unopened),
                "cases": len({h.case_id for h in hits if h.case_id is not None}),
                "with_live": dict(sorted(with_live.items(), key=lambda kv: (-kv[1], kv[0]))),
                "live_opened": {k: len(v) for k, v in sorted(live_cases.items())},
                "examples": {
                    "would_open": [_hit_dict(h) for h in unopened[:examples]],
                    "overlap": [_hit_dict(h) for h in overlap[:examples]],
                    "shadow_only": [_hit_dict(h) for h in alone[:examples]],
                },
                "truncated": truncated,
            }

    def _summary(self, s: Session, row: RuleRow) -> dict:
        v = _version(s, row.name, row.version)
        return {
            "name": row.name,
            "status": row.status,
            "version": row.version,
            "active_version": row.active_version,
            "shadow_version": row.shadow_version,
            "owner": row.owner,
            "expression": v.expression,
            "effect": v.effect,
            "description": v.description,
            "approved": v.approved_by is not None,
            "errors": self.errors.get(row.name, 0),
            "live_hits": self.live_hits.get(row.name, 0),
            "updated_by": row.updated_by,
            "updated_at": iso(row.updated_at),
        }

    # ---------------------------------------------------------------- changes

    def create(
        self, name: str, expression: str, effect: dict, actor: str, *, description: str = "", person: str | None = None
    ) -> dict:
        """A new rule, version 1, as a draft (it runs nowhere until shadowed or enabled). ``person`` is the human
        behind ``actor`` (:attr:`~safehold.auth.apikeys.Principal.person`; default ``actor``), whom approval
        compares."""
        check_name(name)
        effect, description = self._check(expression, effect, description)
        with self.db.session() as s:
            if s.get(RuleRow, name) is not None:
                raise Conflict("rules.exists", f"A rule named {name!r} exists; edit it instead.", detail={"name": name})
            s.add(RuleRow(name=name, status="draft", version=1, active_version=None, owner=actor, updated_by=actor))
            s.add(
                RuleVersion(
                    name=name,
                    version=1,
                    expression=expression,
                    effect=effect,
                    description=description,
                    diff=_diff("", {}, expression, effect),
                    created_by=actor,
                    author=person or actor,
                )
            )
            self.audit.record(s, actor, "rules.create", f"rule:{name}", {"version": 1})
        return self.show(name)

    def edit(
        self,
        name: str,
        actor: str,
        *,
        expression: str | None = None,
        effect: dict | None = None,
        description: str | None = None,
        person: str | None = None,
    ) -> dict:
        """A new version from the newest one with what changed; the active version (if any) keeps running."""
        with self.db.session() as s:
            row = _row(s, name)
            prev = _version(s, name, row.version)
            expression = prev.expression if expression is None else expression
            effect, description = self._check(
                expression,
                prev.effect if effect is None else effect,
                prev.description if description is None else description,
            )
            if (expression, effect, description) == (prev.expression, prev.effect, prev.description):
                return self.show(name)
            version = row.version + 1
            s.add(
                RuleVersion(
                    name=name,
                    version=version,
                    expression=expression,
                    effect=effect,
                    description=description,
                    diff=_diff(prev.expression, prev.effect, expression, effect),
                    created_by=actor,
                    author=person or actor,
                )
            )
            row.version, row.updated_by = version, actor
            if row.status == "draft":
                row.active_version = None
            self.audit.record(s, actor, "rules.edit", f"rule:{name}", {"version": version})
        return self.show(name)

    def approve(self, name: str, actor: str, version: int | None = None, *, person: str | None = None) -> dict:
        """A second admin's approval of a version (default: the newest); never its author's own, whether she
        signs as herself or through an API key she created (``person``, as :meth:`create`)."""
        person = person or actor
        with self.db.session() as s:
            row = _row(s, name)
            v = _version(s, name, version or row.version)
            if actor == v.created_by or person in (v.created_by, v.author):
                raise SafeholdError(
                    "rules.self_approval", "A rule version is approved by an admin other than its author.", status=403
                )
            if v.approved_by is None:
                v.approved_by, v.approver, v.approved_at = actor, person, dt.datetime.now(dt.UTC)
                self.audit.record(s, actor, "rules.approve", f"rule:{name}", {"version": v.version})
        return self.show(name)

    def set_status(self, name: str, status: str, actor: str, version: int | None = None) -> dict:
        """Run a version in ``shadow`` or ``live`` (default: the newest), or stop the rule (``disabled``).

        On a live rule, ``shadow`` runs the version in shadow beside the live one, which keeps acting (to stop the
        live version, disable the rule first). ``live`` makes the version the live one and ends any shadow beside
        it: promoting the shadow version, or (with the live version) stopping the shadow alone."""
        if status not in STATUSES or status == "draft":
            raise SafeholdError("rules.invalid_status", "A rule is switched to shadow, live or disabled.")
        with self.db.session() as s:
            row = _row(s, name)
            if status == "disabled":
                row.status, row.shadow_version = "disabled", None
            else:
                v = _version(s, name, version or row.version)
                if status == "live" and self.require_approval and v.approved_by is None:
                    raise SafeholdError(
                        "rules.not_approved",
                        f"Version {v.version} of {name!r} needs a second admin's approval before it goes live.",
                        status=409,
                        detail={"name": name, "version": v.version},
                    )
                compile_expression(v.expression, _list_names(s))  # a list it reads may be gone
                if status == "shadow" and row.status == "live":
                    if v.version == row.active_version:
                        raise SafeholdError(
                            "rules.invalid_status",
                            f"Version {v.version} of {name!r} is the live version; shadow another version beside it.",
                        )
                    row.shadow_version = v.version
                else:
                    row.status, row.active_version, row.shadow_version = status, v.version, None
            row.updated_by = actor
            detail = {"version": row.active_version}
            if row.shadow_version is not None:
                detail["shadow_version"] = row.shadow_version
            self.audit.record(s, actor, f"rules.{status}", f"rule:{name}", detail)
        self.sync()
        return self.show(name)

    def delete(self, name: str, actor: str) -> dict:
        with self.db.session() as s:
            row = _row(s, name)
            s.execute(delete(RuleVersion).where(RuleVersion.name == name))
            s.delete(row)
            self.audit.record(s, actor, "rules.delete", f"rule:{name}", {})
        self.sync()
        return {"name": name, "deleted": True}

    def _check(self, expression: str, effect: dict, description: str) -> tuple[dict, str]:
        effect = check_effect(effect)
        if effect["type"] == "route_to_queue" and effect["queue"] not in QUEUES:
            raise SafeholdError("rules.invalid_effect", f"A queue is one of {', '.join(QUEUES)}.")
        if effect["type"] == "action" and effect["name"] not in ACTION_KINDS:
            raise SafeholdError("rules.invalid_effect", f"An action is one of {', '.join(ACTION_KINDS)}.")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise SafeholdError("rules.invalid_description", f"A description is at most {MAX_DESCRIPTION} characters.")
        with self.db.session() as s:
            compile_expression(expression, _list_names(s))
        return effect, description

    # ---------------------------------------------------------------- named lists

    def lists(self) -> list[dict]:
        with self.db.session() as s:
            return [_list_dict(r) for r in s.scalars(select(RuleList).order_by(RuleList.name))]

    def get_list(self, name: str) -> dict:
        """A named list with its items (and a change waiting for approval, if any)."""
        with self.db.session() as s:
            row = _list_row(s, name)
            return {**_list_dict(row), "values": list(row.items), "pending_values": list(row.pending_items or [])}

    def live_readers(self, name: str) -> list[str]:
        """The live rules whose running version reads the named list."""
        return self.readers().get(name, [])

    def readers(self) -> dict[str, list[str]]:
        """Each named list's live readers (the rules whose running version reads it), as the rule set now is."""
        self.sync()
        out: dict[str, list[str]] = {}
        for r in self.current().rules:
            if r.status == "live":
                for name in r.compiled.lists:
                    out.setdefault(name, []).append(r.name)
        return {k: sorted(v) for k, v in out.items()}

    def put_list(self, name: str, kind: str, items: Sequence[str], actor: str, *, person: str | None = None) -> dict:
        """Create or replace a named list (terms, hashes or accounts) rules test with ``in``.

        A list a live rule reads is part of what that rule does: with approval required, a change to it waits as
        the list's pending change (``pending: true``) until an admin other than its author approves it
        (:meth:`approve_list`), as a rule version would; the list in force stays as it was. A new list, or one
        only drafts and shadow rules read, changes at once."""
        check_name(name)
        if kind not in LIST_KINDS:
            raise SafeholdError("rules.invalid_list", f"A list's kind is one of {', '.join(LIST_KINDS)}.")
        if (
            not isinstance(items, list | tuple)
            or len(items) > MAX_LIST_ITEMS
            or not all(isinstance(i, str) and 0 < len(i) <= MAX_STRING for i in items)
        ):
            raise SafeholdError(
                "rules.invalid_list",
                f"A list holds at most {MAX_LIST_ITEMS} strings of 1 to {MAX_STRING} characters.",
            )
        items = sorted(set(i.lower() if kind == "terms" else i for i in items))
        readers = self.live_readers(name) if self.require_approval else []
        with self.db.session() as s:
            row = s.get(RuleList, name)
            if row is None:
                s.add(RuleList(name=name, kind=kind, items=items, version=1, updated_by=actor))
            elif readers:
                row.pending_kind, row.pending_items, row.pending_by = kind, items, actor
                row.pending_author, row.pending_at = person or actor, dt.datetime.now(dt.UTC)
                detail = {"kind": kind, "items": len(items), "read_by": readers}
                self.audit.record(s, actor, "rules.list_pending", f"rule_list:{name}", detail)
                return {"name": name, "kind": kind, "items": len(items), "pending": True, "read_by": readers}
            else:
                row.kind, row.items, row.version, row.updated_by = kind, items, row.version + 1, actor
                _clear_pending(row)
            self.audit.record(s, actor, "rules.list", f"rule_list:{name}", {"kind": kind, "items": len(items)})
        self.sync()
        return {"name": name, "kind": kind, "items": len(items), "pending": False}

    def approve_list(self, name: str, actor: str, *, person: str | None = None) -> dict:
        """Put a list's pending change in force: by an admin other than the one who made it."""
        person = person or actor
        with self.db.session() as s:
            row = _list_row(s, name)
            if row.pending_items is None:
                raise Conflict("rules.no_pending_list", f"The list {name!r} has no change waiting for approval.")
            if actor == row.pending_by or person in (row.pending_by, row.pending_author):
                raise SafeholdError(
                    "rules.self_approval",
                    "A change to a named list is approved by an admin other than its author.",
                    status=403,
                )
            row.kind, row.items, row.version = row.pending_kind, row.pending_items, row.version + 1
            row.updated_by = row.pending_by
            detail = {"items": len(row.items), "by": row.pending_by}
            _clear_pending(row)
            self.audit.record(s, actor, "rules.list_approve", f"rule_list:{name}", detail)
        self.sync()
        return self.get_list(name)

    # ---------------------------------------------------------------- backtest

    def backtest(self, name: str, days: int = 7, version: int | None = None, limit: int = 100) -> dict:
        """Run a version of a rule (default: the newest) over the detections recorded in the last ``days`` days
        (every signal a case received, grouped by the moment it was recorded) and say what it would have matched.
        Reads at most ``SAFEHOLD_RULES_BACKTEST_ROWS`` signals for at most ``SAFEHOLD_RULES_BACKTEST_SECONDS``."""
        if not isinstance(days, int) or not 1 <= days <= 365:
            raise SafeholdError("rules.invalid_backtest", "A backtest covers 1 to 365 days.")
        limit = max(1, min(int(limit), 1000))
        deadline = time.monotonic() + self.backtest_seconds
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        with self.db.session() as s:
            row = _row(s, name)
            v = _version(s, name, version or row.version)
            lists = {r.name: r.items for r in s.scalars(select(RuleList))}
            compiled = compile_expression(v.expression, lists)
            q = (
                select(CaseSignal, Case.content_id, Case.account_id, Case.metadata_)
                .join(Case, Case.id == CaseSignal.case_id)
                .where(CaseSignal.at >= since)
                .order_by(CaseSignal.case_id, CaseSignal.at)
                .limit(self.backtest_rows)
            )
            detections, matched, errors, examples, rows, truncated = 0, 0, 0, [], 0, False
            group: list = []
            key = None
            result = s.execute(q)
            for sig, content_id, account_id, meta in result:
                rows += 1
                k = (sig.case_id, sig.at)
                if group and k != key:
                    detections, matched, errors = self._judge(
                        compiled, group, lists, detections, matched, errors, examples, limit
                    )
                    group = []
                    if time.monotonic() > deadline:
                        truncated = True
                        break
                key = k
                group.append((sig, content_id, account_id, meta))
            else:
                truncated = rows >= self.backtest_rows
            if group and not truncated:
                detections, matched, errors = self._judge(
                    compiled, group, lists, detections, matched, errors, examples, limit
                )
        return {
            "name": name,
            "version": v.version,
            "days": days,
            "detections": detections,
            "matched": matched,
            "errors": errors,
            "truncated": truncated,
            "examples": examples,
        }

    @staticmethod
    def _judge(compiled, group, lists, detections, matched, errors, examples, limit):
        facts = facts_from_signals(group)
        hit, error = evaluate_one(compiled, facts, lists)
        sig = group[0][0]
        if error is not None:
            errors += 1
        if hit:
            matched += 1
            if len(examples) < limit:
                examples.append(
                    {"case_id": sig.case_id, "at": iso(sig.at), "content_id": group[0][1], "account_id": group[0][2]}
                )
        return detections + 1, matched, errors


# ------------------------------------------------------------------------------------------ facts


def facts_for(
    sub: Submission, matches: Sequence[DetectionSignal], classified: Sequence[Classification], ages: AgeLookup
) -> Facts:
    """What a rule sees of a submission (engine.VARIABLES)."""
    d = sub.detection
    scores: dict[str, float] = {}
    for c in classified:
        for sc in c.scores:
            scores[sc.label] = max(scores.get(sc.label, 0.0), sc.score)
    facts = _facts(d.content_id, d.account_id, d.media_type, sub.source or d.source, d.metadata, matches, d.signals)
    facts.scores = scores
    facts.hashes = [sig["value"] for scan in sub.scans for sig in scan.signals]
    facts.age = {
        "uploader": ages.band(d.account_id) if d.account_id else "unknown",
        "reasons": list(sub.age_reasons),
    }
    return facts


def facts_from_signals(group: list) -> Facts:
    """What a rule sees of one recorded detection (the signals a case received at one moment), for the backtest;
    classifier scores come from the signals' details, age bands from their age context."""
    sig0, content_id, account_id, meta = group[0]
    sigs = [g[0] for g in group]
    matches = [s for s in sigs if s.source in ("hash_match", "rematch")]
    own = [s for s in sigs if s.source not in ("hash_match", "rematch", "classifier")]
    facts = _facts(content_id, account_id, None, sig0.source, meta or {}, matches, own)
    for s in sigs:
        if s.source == "classifier":
            for label, score in (s.detail or {}).get("scores", {}).items():
                if isinstance(score, int | float):
                    facts.scores[label] = max(facts.scores.get(label, 0.0), float(score))
            age = (s.detail or {}).get("age") or {}
            if age:
                facts.age = {"uploader": age.get("uploader_band", "unknown"), "reasons": list(age.get("reasons", []))}
        if s.value and s.source in ("hash_match", "rematch"):
            facts.hashes.append(s.value)
    return facts


def _facts(content_id, account_id, media_type, door, metadata: dict, matches, own) -> Facts:
    reports = [s for s in own if s.source == "user_report"]
    account = metadata.get("account") if isinstance(metadata.get("account"), dict) else {}
    return Facts(
        subject={
            "kind": "content" if content_id else "account",
            "content_id": content_id or "",
            "account_id": account_id or "",
            "media_type": media_type or "",
            "door": door or "",
        },
        matches=[
            {
                "bank": m.bank or "",
                "category": m.category or "",
                "distance": m.distance if m.distance is not None else 0,
                "signal_type": m.signal_type or "",
                "confidence": float(m.confidence),
                "quarantined": bool((m.detail or {}).get("quarantine")),
            }
            for m in matches
        ],
        signals=[
            {
                "source": s.source,
                "category": s.category or "",
                "confidence": float(s.confidence),
                "label": str((s.detail or {}).get("label", "")),
            }
            for s in own
        ],
        grooming=max((float(s.confidence) for s in own if s.source == "grooming"), default=0.0),
        solicitation=max((float(s.confidence) for s in own if s.source == "solicitation"), default=0.0),
        report=(
            {
                "present": True,
                "category": str((reports[0].detail or {}).get("report_category") or reports[0].category or ""),
                "count": max(len(reports), *(_count((s.detail or {}).get("count")) for s in reports)),
                "trusted": any((s.detail or {}).get("trusted") for s in reports),
            }
            if reports
            else {}
        ),
        account=account,
    )


# ------------------------------------------------------------------------------------------ helpers


def _count(value: object) -> int:
    """A user report's ``count`` (distinct reporters waiting on the subject, safehold.intake), 1 when absent."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _row(s: Session, name: str) -> RuleRow:
    check_name(name)
    row = s.get(RuleRow, name)
    if row is None:
        raise NotFound("rules.not_found", f"No rule {name!r}.", detail={"name": name})
    return row


def _version(s: Session, name: str, version: int) -> RuleVersion:
    v = s.scalar(select(RuleVersion).where(RuleVersion.name == name, RuleVersion.version == version))
    if v is None:
        raise NotFound("rules.version_not_found", f"Rule {name!r} has no version {version}.", detail={"name": name})
    return v


def _list_row(s: Session, name: str) -> RuleList:
    check_name(name)
    row = s.get(RuleList, name)
    if row is None:
        raise NotFound("rules.list_not_found", f"No named list {name!r}.", detail={"name": name})
    return row


def _list_dict(r: RuleList) -> dict:
    pending = None
    if r.pending_items is not None:
        pending = {"kind": r.pending_kind, "items": len(r.pending_items), "by": r.pending_by, "at": iso(r.pending_at)}
    return {
        "name": r.name,
        "kind": r.kind,
        "items": len(r.items),
        "version": r.version,
        "updated_by": r.updated_by,
        "updated_at": iso(r.updated_at),
        "pending": pending,
    }


def _clear_pending(row: RuleList) -> None:
    row.pending_kind = row.pending_items = row.pending_by = row.pending_author = row.pending_at = None


def _list_names(s: Session) -> list[str]:
    return list(s.scalars(select(RuleList.name)))


def _diff(old_expr: str, old_effect: dict, new_expr: str, new_effect: dict) -> str:
    def text(expr: str, effect: dict) -> list[str]:
        return [*expr.splitlines(), f"effect: {json.dumps(effect, sort_keys=True)}"] if expr else []

    return "\n".join(
        difflib.unified_diff(text(old_expr, old_effect), text(new_expr, new_effect), "before", "after", lineterm="")
    )


def _hit_dict(h: RuleShadowHit) -> dict:
    return {
        "version": h.version,
        "effect": h.effect,
        "content_id": h.content_id,
        "account_id": h.account_id,
        "door": h.door,
        "live": h.live,
        "case_id": h.case_id,
        "at": iso(h.at),
    }


def _version_dict(v: RuleVersion) -> dict:
    return {
        "version": v.version,
        "expression": v.expression,
        "effect": v.effect,
        "description": v.description,
        "diff": v.diff,
        "created_by": v.created_by,
        "created_at": iso(v.created_at),
        "approved_by": v.approved_by,
        "approved_at": iso(v.approved_at),
        "author": v.author or v.created_by,
        "approver": v.approver or v.approved_by,
    }
