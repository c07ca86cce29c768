"""Appeals: the reported side asks, through the platform, for a decided case to be looked at again.

One appeal per decision: an appeal is received for a closed, decided case (``appeal.not_decided`` otherwise); a
second one while the first waits answers the first (``duplicate: true``), one after it was reviewed is refused
(``appeal.already_reviewed``). The second review must come from a reviewer who took no part in the decision — neither
its author nor its confirming second reviewer (``appeal.same_reviewer``, enforced here, not by convention). The
outcome (``upheld``: the decision stands; ``overturned``: it does not) is recorded on the case's decision history,
audited, sent to the platform as an ``appeal.decided`` webhook (the platform restores what it removed) and counted for
transparency.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from safehold.actions.webhooks import WebhookService
from safehold.audit import AuditService
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, allows
from safehold.errors import Conflict, NotFound, SafeholdError, validated
from safehold.store.db import Database
from safehold.store.models import Appeal, Case, CaseDecision, iso, utcnow

STATUSES = ("received", "upheld", "overturned")
OUTCOMES = ("upheld", "overturned")
EVENT = "appeal.decided"
MAX_REASON = 4000
MAX_LIMIT = 500
MAX_ID = 2**63 - 1


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: int = Field(ge=1, le=MAX_ID, description="The decided case (named in the action webhook).")
    account_id: str = Field(None, min_length=1, max_length=128, description="The appellant's account.")
    reference: str = Field(None, min_length=1, max_length=128, description="The platform's reference, for follow-up.")
    reason: str = Field("", max_length=MAX_REASON, description="What the appellant says.")


class AppealReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    note: str = Field(None, max_length=MAX_REASON)


class AppealService:
    def __init__(self, db: Database, audit: AuditService, webhooks: WebhookService):
        self.db, self.audit, self.webhooks = db, audit, webhooks

    def create(self, principal: Principal, body: object) -> dict:
        a = validated(AppealIn, body, "the appeal")
        with self.db.session() as s:
            case = s.get(Case, a.case_id)
            if case is None:
                raise NotFound("case.not_found", f"No case with id {a.case_id}.")
            if case.status != "closed" or not case.decision:
                raise Conflict("appeal.not_decided", f"Case {a.case_id} has no final decision to appeal.")
            earlier = s.scalars(select(Appeal).where(Appeal.case_id == case.id).order_by(Appeal.id.desc())).first()
            if earlier is not None and (earlier.decision, earlier.decided_by) == (case.decision, case.decided_by):
                if earlier.status != "received":
                    raise Conflict(
                        "appeal.already_reviewed",
                        f"The decision on case {case.id} was already reviewed on appeal ({earlier.status}).",
                    )
                return {**appeal_dict(earlier), "duplicate": True}
            row = Appeal(
                platform=principal.label, case_id=case.id, account_id=a.account_id or case.account_id,
                reference=a.reference, reason=a.reason, decision=case.decision, decided_by=case.decided_by,
                status="received", created_at=utcnow(),
            )  # fmt: skip
            s.add(row)
            s.flush()
            self.audit.record(s, principal.label, "appeal.receive", f"appeal:{row.id}", {"case_id": case.id})
            return {**appeal_dict(row), "duplicate": False}

    def review(self, appeal_id: int, principal: Principal, body: object) -> dict:
        """The second review of an appeal, by a reviewer who took no part in the decision."""
        r = validated(AppealReviewIn, body, "the appeal review")
        actor, now = principal.label, utcnow()
        with self.db.session() as s:
            row = s.get(Appeal, appeal_id, with_for_update=True)
            if row is None:
                raise NotFound("appeal.not_found", f"No appeal with id {appeal_id}.")
            if row.status != "received":
                raise Conflict("appeal.already_reviewed", f"Appeal {appeal_id} was already reviewed ({row.status}).")
            case = s.get(Case, row.case_id)
            if actor in {row.decided_by, case.decided_by if case else None, case.confirmed_by if case else None}:
                raise Conflict(
                    "appeal.same_reviewer",
                    "An appeal is reviewed by another reviewer than the ones who took the decision.",
                )
            row.status, row.reviewer, row.note, row.reviewed_at = r.outcome, actor, r.note, now
            if case is not None:
                s.add(CaseDecision(case_id=case.id, kind="appeal", decision=r.outcome, classification=None,
                                   note=r.note, actor=actor, at=now))  # fmt: skip
                case.metadata_ = {**(case.metadata_ or {}), "appeal": {"id": row.id, "outcome": r.outcome}}
            s.flush()
            self.webhooks.enqueue(s, EVENT, {"appeal": appeal_dict(row)})
            self.audit.record(
                s, actor, "appeal.review", f"appeal:{row.id}",
                {"case_id": row.case_id, "outcome": r.outcome, "decided_by": row.decided_by},
            )  # fmt: skip
            return appeal_dict(row)

    def get(self, appeal_id: int, principal: Principal) -> dict:
        with self.db.session() as s:
            row = s.get(Appeal, appeal_id)
            if row is None or not (row.platform == principal.label or allows(principal.role, Permission.CASES_READ)):
                raise NotFound("appeal.not_found", f"No appeal with id {appeal_id}.")
            return appeal_dict(row)

    def list(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        if status is not None and status not in STATUSES:
            raise SafeholdError("appeal.invalid_status", f"status is one of {', '.join(STATUSES)}.")
        q = select(Appeal)
        if status:
            q = q.where(Appeal.status == status)
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(q.order_by(Appeal.id.desc()).limit(max(1, min(limit, MAX_LIMIT))).offset(max(0, offset)))
            return {"total": total, "appeals": [appeal_dict(r) for r in rows]}


def appeal_dict(a: Appeal) -> dict:
    return {
        "id": a.id,
        "case_id": a.case_id,
        "account_id": a.account_id,
        "reference": a.reference,
        "reason": a.reason,
        "decision": a.decision,
        "decided_by": a.decided_by,
        "status": a.status,
        "reviewer": a.reviewer,
        "note": a.note,
        "received_at": iso(a.created_at),
        "reviewed_at": iso(a.reviewed_at),
    }
