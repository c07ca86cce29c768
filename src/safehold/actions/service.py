"""Policies and actions: what a decision (or an automatic match) makes the platform do.

A policy maps a trigger to action kinds. ``decision`` policies fire when a case is decided (``match``:
``{"decision": "csam", "classification"?: ["A1", ...]}``); ``auto`` policies fire on a detection from a bank
set to ``on_match: auto`` (``match``: any of ``source``, ``bank``, ``category`` list, ``min_confidence``).

Each action is a ``case_actions`` row plus one outbox row per subscribed webhook, written in the caller's
transaction: a decision and the actions it causes commit together, or neither does. ``dedupe_key`` (case,
policy, kind) is unique, so re-running a decision's policies never acts twice.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from safehold.actions.webhooks import (
    ACTION_KINDS,
    INTERNAL_KINDS,
    NAME_PATTERN,
    WebhookService,
    action_event,
    delivery_to_dict,
)
from safehold.audit import AuditService
from safehold.cases.taxonomy import CLASSIFICATIONS, CSE_KINDS, VIOLATING
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.store.db import Database
from safehold.store.models import Case, CaseAction, Policy, Webhook, WebhookDelivery

__all__ = ["ACTION_KINDS", "INTERNAL_KINDS", "TRIGGERS", "ActionService"]

TRIGGERS = ("decision", "auto")
_NAME = re.compile(NAME_PATTERN)
#: Decisions a policy can match (the violating ones and ``not_violating``), with the classifications allowed.
_DECISION_CLASSES = {**{d: {"csam": CLASSIFICATIONS, "cse": CSE_KINDS}[d] for d in VIOLATING}, "not_violating": ()}
_AUTO_KEYS = {"source", "bank", "category", "min_confidence"}
#: Delivery fields shown with each action (the full record, with its payload, is in ``WebhookService.deliveries``).
DELIVERY_SUMMARY = ("id", "webhook", "status", "attempts", "last_status", "last_error", "delivered_at")


class ActionService:
    def __init__(self, db: Database, audit: AuditService, webhooks: WebhookService):
        self.db, self.audit, self.webhooks = db, audit, webhooks

    # ------------------------------------------------------------- policies

    def list_policies(self) -> list[dict]:
        with self.db.session() as s:
            return [_policy_dict(p) for p in s.scalars(select(Policy).order_by(Policy.name))]

    def get_policy(self, name: str) -> dict:
        with self.db.session() as s:
            return _policy_dict(_policy(s, name))

    def create_policy(
        self,
        name: str,
        trigger: str,
        match: dict,
        actions: list,
        enabled: bool = True,
        actor: str | None = None,
    ) -> dict:
        if not _NAME.fullmatch(name or ""):
            raise _invalid("A policy name is 1-64 letters, digits, '.', '_' or '-', starting alphanumeric.")
        if trigger not in TRIGGERS:
            raise _invalid(f"trigger must be one of {', '.join(TRIGGERS)}.")
        match, actions = _check_match(trigger, match), _check_actions(actions)
        with self.db.session() as s:
            if s.scalar(select(Policy.id).where(Policy.name == name)) is not None:
                raise Conflict("policy.exists", f"A policy named {name!r} already exists.")
            p = Policy(name=name, trigger=trigger, match=match, actions=actions, enabled=enabled, updated_by=actor)
            s.add(p)
            s.flush()
            out = _policy_dict(p)
            detail = {"trigger": trigger, "match": match, "actions": actions, "enabled": enabled}
            self.audit.record(s, actor, "policy.create", f"policy:{name}", detail)
        return out

    def update_policy(
        self,
        name: str,
        *,
        match: dict | None = None,
        actions: list | None = None,
        enabled: bool | None = None,
        actor: str | None = None,
    ) -> dict:
        with self.db.session() as s:
            p = _policy(s, name)
            if match is not None and isinstance(match, dict) and ("decision" in match) != (p.trigger == "decision"):
                # A well-formed match of the other trigger's kind: the policy's trigger refuses it, not its form.
                raise Conflict(
                    "policy.trigger_mismatch",
                    f"Policy {name!r} is triggered by {'a decision' if p.trigger == 'decision' else 'a detection'}: "
                    f"its match {'names a decision' if p.trigger == 'decision' else 'names no decision'}.",
                    detail={"trigger": p.trigger},
                )
            new = {
                "match": None if match is None else _check_match(p.trigger, match),
                "actions": None if actions is None else _check_actions(actions),
                "enabled": enabled,
            }
            changes = {k: [getattr(p, k), v] for k, v in new.items() if v is not None and v != getattr(p, k)}
            for k, (_, v) in changes.items():
                setattr(p, k, v)
            if changes:
                p.updated_by = actor
                s.flush()
                self.audit.record(s, actor, "policy.update", f"policy:{name}", {"changes": changes})
            return _policy_dict(p)

    def delete_policy(self, name: str, actor: str | None = None) -> dict:
        """Delete a policy. Actions it already took stay on their cases (they name the policy)."""
        with self.db.session() as s:
            p = _policy(s, name)
            out = _policy_dict(p)
            s.delete(p)
            s.flush()
            self.audit.record(s, actor, "policy.delete", f"policy:{name}", {"trigger": p.trigger})
        return out

    # -------------------------------------------------------------- actions

    def for_decision(self, session: Session, case: Case, actor: str) -> list[dict]:
        """Run the enabled ``decision`` policies matching ``case.decision``/``classification``, inside the
        caller's transaction. Returns the actions created now (ones taken before are not repeated)."""
        if not case.decision:
            return []
        fired = [
            (p.name, kind, params)
            for p in _enabled(session, "decision")
            if _decision_matches(p.match, case)
            for kind, params in _items(p.actions)
        ]
        return self._act(session, case, fired, actor)

    def for_detection(self, session: Session, case: Case, signals: list, actor: str) -> list[dict]:
        """Run the enabled ``auto`` policies that any of ``signals`` (``DetectionSignal`` or ``CaseSignal``
        objects, or dicts) satisfies, inside the caller's transaction."""
        fired = [
            (p.name, kind, params)
            for p in _enabled(session, "auto")
            if any(_signal_matches(p.match, sig) for sig in signals)
            for kind, params in _items(p.actions)
        ]
        return self._act(session, case, fired, actor)

    def for_rule(self, session: Session, case: Case, rule: str, kind: str, actor: str) -> list[dict]:
        """The action an operator rule names (``action`` effect, docs/rules.md), inside the caller's transaction;
        once per rule, kind and case, like a policy's."""
        _check_kind(kind)
        return self._act(session, case, [(f"rule:{rule}", kind, {})], actor)

    def for_door(self, session: Session, case: Case, door: str, kind: str, params: dict, actor: str) -> list[dict]:
        """An action a door takes itself on the case its detection opened (a live stream's ``interrupt`` on a
        known-material match), inside the caller's transaction; once per door, kind and case, like a policy's."""
        _check_kind(kind)
        return self._act(session, case, [(door, kind, params)], actor)

    def take(self, case_id: int, kind: str, actor: str, params: dict | None = None) -> dict:
        """A manual action on a case (senior reviewers). The same kind is taken by hand at most once per case
        (``action.exists``), so a double click never acts twice."""
        _check_kind(kind)
        with self.db.session() as s:
            case = s.get(Case, case_id)
            if case is None:
                raise NotFound("case.not_found", f"No case {case_id}.")
            existing = s.scalar(select(CaseAction.id).where(CaseAction.dedupe_key == _dedupe_key(case.id, None, kind)))
            if existing is not None:
                message = f"{kind} was already taken by hand on case {case_id}."
                raise Conflict("action.exists", message, detail={"action_id": existing})
            return self._act(s, case, [(None, kind, params or {})], actor)[0]

    def list_for_case(self, case_id: int) -> list[dict]:
        """The case's actions, oldest first, each with its deliveries' statuses."""
        with self.db.session() as s:
            rows = list(s.scalars(select(CaseAction).where(CaseAction.case_id == case_id).order_by(CaseAction.id)))
            deliveries = _deliveries(s, [a.id for a in rows])
            return [_action_dict(a, deliveries.get(a.id, [])) for a in rows]

    def _act(self, s: Session, case: Case, fired: list[tuple[str | None, str, dict]], actor: str) -> list[dict]:
        if case.id is None:
            s.flush()
        created: list[tuple[CaseAction, int]] = []
        for policy, kind, params in fired:
            key = _dedupe_key(case.id, policy, kind)
            if s.scalar(select(CaseAction.id).where(CaseAction.dedupe_key == key)) is not None:
                continue
            row = CaseAction(case_id=case.id, kind=kind, params=params, policy=policy, actor=actor, dedupe_key=key)
            s.add(row)
            s.flush()
            created.append((row, self.webhooks.enqueue(s, action_event(kind), _payload(case, row), action_id=row.id)))
        deliveries = _deliveries(s, [row.id for row, _ in created])
        for row, n in created:  # last in the transaction, like every audit record
            detail = {"action_id": row.id, "kind": row.kind, "policy": row.policy, "deliveries": n}
            self.audit.record(s, actor, "action.create", f"case:{case.id}", detail)
        return [_action_dict(row, deliveries.get(row.id, [])) for row, _ in created]


# ------------------------------------------------------------------ helpers


def _dedupe_key(case_id: int, policy: str | None, kind: str) -> str:
    # Manual actions have an empty policy part: no policy name can be empty, so the keys never collide.
    return f"{case_id}:{policy or ''}:{kind}"


def _payload(case: Case, action: CaseAction) -> dict:
    """What the platform receives (besides ``id``, ``event`` and ``created_at``, added per delivery)."""
    return {
        "case": {
            "id": case.id,
            "content_id": case.content_id,
            "account_id": case.account_id,
            "decision": case.decision,
            "classification": case.classification,
            "category": case.category,
        },
        "action": {"id": action.id, "kind": action.kind, "params": action.params or {}, "policy": action.policy},
    }


def _enabled(s: Session, trigger: str) -> list[Policy]:
    q = select(Policy).where(Policy.trigger == trigger, Policy.enabled.is_(True)).order_by(Policy.name)
    return list(s.scalars(q))


def _decision_matches(match: dict, case: Case) -> bool:
    if match.get("decision") != case.decision:
        return False
    classes = match.get("classification")
    return not classes or case.classification in classes


def _signal_matches(match: dict, sig) -> bool:
    def field(name):
        return sig.get(name) if isinstance(sig, dict) else getattr(sig, name, None)

    if "source" in match and field("source") != match["source"]:
        return False
    if "bank" in match and field("bank") != match["bank"]:
        return False
    if "category" in match and field("category") not in match["category"]:
        return False
    return (field("confidence") or 0.0) >= match.get("min_confidence", 0.0)


def _items(actions: list) -> list[tuple[str, dict]]:
    """A policy's actions as (kind, params): stored as a kind, or ``{"kind", "params"}`` when it has params."""
    return [(a, {}) if isinstance(a, str) else (a["kind"], a.get("params") or {}) for a in actions]


def _deliveries(s: Session, action_ids: list[int]) -> dict[int, list[dict]]:
    if not action_ids:
        return {}
    q = (
        select(WebhookDelivery, Webhook.name)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.action_id.in_(action_ids))
        .order_by(WebhookDelivery.id)
    )
    out: dict[int, list[dict]] = {}
    for d, name in s.execute(q):
        full = delivery_to_dict(d, name, None)
        out.setdefault(d.action_id, []).append({k: full[k] for k in DELIVERY_SUMMARY})
    return out


def _action_dict(a: CaseAction, deliveries: list[dict]) -> dict:
    return {
        "id": a.id,
        "case_id": a.case_id,
        "kind": a.kind,
        "params": a.params or {},
        "policy": a.policy,
        "actor": a.actor,
        "internal": a.kind in INTERNAL_KINDS,
        "created_at": a.created_at.isoformat(),
        "deliveries": deliveries,
    }


def _policy_dict(p: Policy) -> dict:
    return {
        "id": p.id,
        "name": p.name,
        "trigger": p.trigger,
        "match": p.match or {},
        "actions": p.actions or [],
        "enabled": p.enabled,
        "updated_by": p.updated_by,
        "updated_at": p.updated_at.isoformat(),
    }


def _policy(s: Session, name: str) -> Policy:
    p = s.scalar(select(Policy).where(Policy.name == name))
    if p is None:
        raise NotFound("policy.not_found", f"No policy named {name!r}.")
    return p


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("policy.invalid", message)


def _check_kind(kind: str) -> None:
    if kind not in ACTION_KINDS:
        raise SafeholdError("action.invalid_kind", f"Unknown action kind {kind!r}; known: {', '.join(ACTION_KINDS)}.")


def _check_match(trigger: str, match: dict) -> dict:
    if not isinstance(match, dict):
        raise _invalid("match must be an object.")
    allowed = {"decision", "classification"} if trigger == "decision" else _AUTO_KEYS
    if unknown := sorted(set(match) - allowed):
        raise _invalid(f"match keys for trigger {trigger!r} are {', '.join(sorted(allowed))}; not {unknown}.")
    if trigger == "decision":
        decision = match.get("decision")
        if decision not in _DECISION_CLASSES:
            raise _invalid(f"match.decision must be one of {', '.join(_DECISION_CLASSES)}.")
        if "classification" in match:
            classes = _str_list(match["classification"], "match.classification")
            if bad := [c for c in classes if c not in _DECISION_CLASSES[decision]]:
                raise _invalid(f"classification {bad} is not valid for decision {decision!r}.")
            return {"decision": decision, "classification": classes}
        return {"decision": decision}
    out = dict(match)
    for key in ("source", "bank"):
        if key in out and (not isinstance(out[key], str) or not out[key]):
            raise _invalid(f"match.{key} must be a non-empty string.")
    if "category" in out:
        out["category"] = _str_list(out["category"], "match.category")
    if "min_confidence" in out:
        value = out["min_confidence"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise _invalid("match.min_confidence must be a number between 0 and 1.")
        out["min_confidence"] = float(value)
    return out


def _check_actions(actions: list) -> list:
    if not isinstance(actions, list) or not actions:
        raise _invalid("actions must be a non-empty list of action kinds.")
    out, seen = [], set()
    for a in actions:
        if isinstance(a, dict) and set(a) <= {"kind", "params"} and isinstance(a.get("params", {}), dict):
            kind, params = a.get("kind"), a.get("params") or {}
        elif isinstance(a, str):
            kind, params = a, {}
        else:
            raise _invalid('Each action is a kind, or {"kind": ..., "params": {...}}.')
        if kind not in ACTION_KINDS:
            raise _invalid(f"Unknown action kind {kind!r}; known: {', '.join(ACTION_KINDS)}.")
        if kind in seen:
            # Its own code: JSON Schema's uniqueItems cannot see "notify" and {"kind": "notify"} as one kind.
            raise SafeholdError("policy.duplicate_action", f"Action {kind!r} is listed twice.", detail={"kind": kind})
        seen.add(kind)
        out.append({"kind": kind, "params": params} if params else kind)
    return out


def _str_list(value, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _invalid(f"{where} must be a non-empty list of strings.")
    return list(dict.fromkeys(value))
