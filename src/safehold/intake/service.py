"""User and trusted-flagger reports (Principle 8): a platform's users tell Safehold what they saw, including material
that is not illegal on its face (sexualised comments under a child's photo, a collection of innocuous images of
children, an adult seeking contact with a child), and are told what became of it.

A report is one more door to the pipeline (:mod:`safehold.pipeline.service`): it becomes a ``user_report`` signal
about its subject (the content, else the account), so the subject's one open case receives it — many reports about
one item are one case, counted (``report.count`` for the rules: distinct reporters whose reports wait for a
decision). Its confidence is the reporter's weight (:mod:`safehold.intake.reliability`), so the case's priority
follows from the category's severity and the reporter's standing. A child's own report ("someone is asking me for
pictures": a reporter under 18, a contact, grooming, sextortion or self-generated imagery category) states
``minor_disclosure`` at level high, the urgency rule that puts the case in P0, and its acknowledgement carries help
resources (``SAFEHOLD_USER_REPORT_HELP``).

Nothing is done twice: the idempotency key is required and scoped to the caller, as for events; the claim, the
report, the case and its signal commit in one transaction. Screenshots are preserved in the encrypted evidence store
(:mod:`safehold.evidence.service`) once the case exists; a retry preserves what a crash left out (each is
idempotent on the report and its position).

When a reviewer's decision closes the case, every report waiting on it gets its outcome (``actioned`` or
``no_action``) and one ``user_report.decided`` webhook per report goes to the platform, in the decision's
transaction (:meth:`UserReportService.case_closed`, hooked into the review service).

The public form (``/report``, :mod:`safehold.web.reports`) has no API key: a platform creates a form token, which
allows creating reports and nothing else, and each client address may send at most
``SAFEHOLD_USER_REPORT_FORM_PER_MINUTE`` reports a minute.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.actions.webhooks import WebhookService
from safehold.agebands import BANDS, is_minor
from safehold.audit import AuditService
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, allows
from safehold.cases.detection import Detection, DetectionSignal
from safehold.cases.taxonomy import VIOLATING
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError, validated
from safehold.evidence.service import EvidenceService
from safehold.intake import reliability
from safehold.pipeline.events import IDEMPOTENCY_KEY_PATTERN, MAX_KEY, scoped_key
from safehold.pipeline.service import Pipeline, Submission
from safehold.store.db import Database
from safehold.store.models import Case, IngestedEvent, ReportFormToken, UserReport, iso, utcnow

#: What a reporter may say happened, and the taxonomy category (cases.taxonomy) each is scored as.
CATEGORIES: dict[str, str] = {
    "sexualised_comments": "sexualised_comments",
    "image_collection": "image_collection",
    "contact_seeking": "grooming",
    "sextortion": "sextortion",
    "self_generated": "csam",
    "grooming": "grooming",
    "known_abuse_material": "csam",
    "other": "other",
}
#: Words for each category (the form's labels, the CLI).
CATEGORY_LABELS = {
    "sexualised_comments": "Sexualised comments on images of a child",
    "image_collection": "A collection of (innocuous) images of children",
    "contact_seeking": "An adult seeking contact with a child",
    "sextortion": "Threats to share images unless more images or money are sent (sextortion)",
    "self_generated": "Images a child took of themself",
    "grooming": "Grooming in a chat",
    "known_abuse_material": "Child sexual abuse material",
    "other": "Something else",
}
#: Categories that make a child's own report the most urgent class (P0).
CHILD_URGENT = ("contact_seeking", "sextortion", "grooming", "self_generated")
STATUSES = ("received", "actioned", "no_action")
MAX_MESSAGES = 50
MAX_MESSAGE = 2000
MAX_DESCRIPTION = 4000
MAX_LIMIT = 500
EVENT = "user_report.decided"
TOKEN_PREFIX = "shrf_"
#: Images a screenshot may be (by their first bytes): PNG, JPEG, GIF, WebP.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")

DEFAULT_HELP = {
    "text": "Thank you for telling us. You are not in trouble. Please tell a trusted adult (a parent, a teacher or "
    "another adult you trust) what happened. Do not send more pictures and do not pay or do what the person asks; "
    "keep the messages, they help stop them.",
    "links": [
        {"title": "Take It Down (NCMEC): get images of you removed", "url": "https://takeitdown.ncmec.org/"},
        {"title": "CyberTipline (NCMEC): report online exploitation", "url": "https://report.cybertip.org/"},
    ],
}


# ------------------------------------------------------------------------------------------ schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(_Strict):
    author: str = Field(None, min_length=1, max_length=128, description="Who wrote it (an account id, or 'me').")
    text: str = Field(max_length=MAX_MESSAGE)
    at: dt.datetime = None


class ContextIn(_Strict):
    messages: list[MessageIn] = Field(
        default_factory=list, max_length=MAX_MESSAGES, description="The surrounding conversation, oldest first."
    )
    screenshots: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Base64 PNG, JPEG, GIF or WebP images; at most SAFEHOLD_USER_REPORT_MAX_SCREENSHOTS, each at "
        "most SAFEHOLD_USER_REPORT_MAX_SCREENSHOT_BYTES decoded. Kept in the encrypted evidence store.",
    )


class UserReportIn(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": ["content_id"]}, {"required": ["account_id"]}]},
    )
    category: Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]
    content_id: str = Field(None, min_length=1, max_length=128, description="The reported content item.")
    account_id: str = Field(None, min_length=1, max_length=128, description="The reported account.")
    reporter_id: str = Field(min_length=1, max_length=128, description="The platform's id of the reporter.")
    trusted: bool = Field(False, strict=True, description="The reporter is a trusted flagger.")
    reporter_age_band: Literal[BANDS] = Field("unknown", description="The reporter's age band, if known.")  # type: ignore[valid-type]
    reference: str = Field(None, min_length=1, max_length=128, description="The platform's reference, for follow-up.")
    description: str = Field(None, max_length=MAX_DESCRIPTION, description="The reporter's own words.")
    context: ContextIn = Field(default_factory=ContextIn)
    idempotency_key: str = Field(
        None, min_length=1, max_length=MAX_KEY, json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN}
    )

    @model_validator(mode="after")
    def _subject(self) -> UserReportIn:
        if not self.content_id and not self.account_id:
            raise ValueError("a report names the reported content_id or account_id (or both)")
        return self


# ------------------------------------------------------------------------------------------ service


class FormLimiter:
    """Reports per client address per minute through the public form, in this process's memory (at most
    ``MAX_ENTRIES`` addresses, oldest forgotten first)."""

    MAX_ENTRIES = 100_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._seen: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, ip: str | None) -> None:
        if not self.per_minute:
            return
        now, key = self.clock(), ip or "-"
        with self._lock:
            times = self._seen.pop(key, None) or deque()
            while times and now - times[0] >= 60.0:
                times.popleft()
            self._seen[key] = times
            while len(self._seen) > self.MAX_ENTRIES:
                self._seen.popitem(last=False)
            if len(times) >= self.per_minute:
                wait = max(1, int(60.0 - (now - times[0])) + 1)
                raise SafeholdError(
                    "rate.limited",
                    "Too many reports from this address; try again in a minute.",
                    status=429,
                    headers={"Retry-After": str(wait)},
                )
            times.append(now)


class UserReportService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        pipeline: Pipeline,
        evidence: EvidenceService,
        webhooks: WebhookService,
        settings: Settings,
    ):
        self.db, self.audit, self.pipeline = db, audit, pipeline
        self.evidence, self.webhooks, self.settings = evidence, webhooks, settings
        self.limiter = FormLimiter(settings.user_report_form_per_minute)

    # ---------------------------------------------------------------- intake

    def submit(self, principal: Principal, body: object, *, idempotency_key: str | None = None) -> dict:
        """Take one report from the platform's API (see the module docs); the answer says the report's id, its
        case and, for a child's own urgent report, the help resources to show."""
        report = validated(UserReportIn, body, "the report")
        key = scoped_key(principal, idempotency_key, report.idempotency_key, prefix="user_report",
                         namespace="user-report:")  # fmt: skip
        return self._take(report, key, _digest(body), platform=principal.label, actor=principal.label, via="api")

    def submit_form(self, token: str, ip: str | None, fields: dict, nonce: str) -> dict:
        """Take one report through the public form: ``token`` names the platform, the reporter is the client
        address (hashed with the token: never stored as such), never a trusted flagger."""
        row = self._token(token)
        self.limiter.admit(ip)
        reporter = "form:" + hashlib.sha256(f"{row.id}:{ip or '-'}".encode()).hexdigest()[:24]
        body = {k: v for k, v in fields.items() if v not in (None, "")}
        body["reporter_id"] = reporter
        report = validated(UserReportIn, body, "the report")
        if not nonce or len(nonce) > MAX_KEY or not nonce.isascii() or not nonce.isprintable():
            raise SafeholdError("user_report.invalid_form", "The form is out of date; reload it and send it again.")
        key = f"form{row.id}:user-report:{nonce}"
        return self._take(report, key, _digest(body), platform=row.platform, actor=f"form:{row.platform}", via="form")

    def _take(self, r: UserReportIn, key: str, digest: str, *, platform: str, actor: str, via: str) -> dict:
        shots = self._screenshots(r.context.screenshots)
        try:
            answer, shot_rows = self._record(r, key, digest, platform, actor, via, shots)
        except IntegrityError:  # the same key, claimed at the same moment by a concurrent retry
            answer, shot_rows = self._record(r, key, digest, platform, actor, via, shots)
        if shot_rows and answer.get("case_id"):
            self._preserve(answer["id"], answer["case_id"], shot_rows, actor)
        return answer

    def _record(self, r, key, digest, platform, actor, via, shots) -> tuple[dict, list[bytes]]:
        now = utcnow()
        with self.db.session() as s:
            claimed = s.get(IngestedEvent, key)
            if claimed is not None:
                if claimed.body_sha256 != digest:
                    raise Conflict(
                        "user_report.idempotency_conflict",
                        "This idempotency key was used for a different report; use a new key for a new one.",
                    )
                return {**claimed.result, "duplicate": True}, shots
            claim = IngestedEvent(key=key, body_sha256=digest, result={})
            s.add(claim)
            s.flush()
            standing = self._standing(s, platform, r, now)
            weight = reliability.weigh(standing)
            count = self._pending_reporters(s, platform, r) | {r.reporter_id}
            urgent = is_minor(r.reporter_age_band) and r.category in CHILD_URGENT
            row = UserReport(
                platform=platform, via=via, category=r.category, content_id=r.content_id, account_id=r.account_id,
                reporter_id=r.reporter_id, trusted=r.trusted, reporter_band=r.reporter_age_band,
                reference=r.reference, description=r.description,
                context={
                    "messages": [m.model_dump(mode="json", exclude_none=True) for m in r.context.messages],
                    "screenshots": [{"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for b in shots],
                },
                weight=weight.value, reliability=weight.to_dict(), urgent=urgent, status="received", created_at=now,
            )  # fmt: skip
            s.add(row)
            s.flush()
            signal = self._signal(row, weight, len(count))
            d = Detection(
                source="user_report",
                content_id=r.content_id,
                account_id=r.account_id,
                signals=[signal],
                metadata={"user_reports": {"pending_reporters": len(count), "latest": row.id}},
            )
            ref = self.pipeline.record(s, Submission(d, opens=True), actor)
            row.case_id = ref.id if ref is not None else None
            answer = {
                "id": row.id,
                "status": row.status,
                "duplicate": False,
                "reference": row.reference,
                "case_id": row.case_id,
                # the case's band once the live rules' effects applied (the ref is the band before them)
                "priority": s.get(Case, ref.id).band if ref is not None else None,
                "urgent": urgent,
                "weight": round(weight.value, 4),
                "help": self.help() if urgent else None,
            }
            claim.result = answer
            self.audit.record(
                s, actor, "user_report.receive", f"user_report:{row.id}",
                {"category": r.category, "case_id": row.case_id, "via": via, "urgent": urgent,
                 "weight": round(weight.value, 4), "trusted": r.trusted},
            )  # fmt: skip
        return answer, shots

    @staticmethod
    def _signal(row: UserReport, weight: reliability.Weight, reporters: int) -> DetectionSignal:
        detail = {
            "report_id": row.id,
            "label": row.category,
            "report_category": row.category,
            "trusted": row.trusted,
            "reporter_band": row.reporter_band,
            "count": reporters,
            "reliability": weight.to_dict(),
        }
        confidence = weight.value
        if row.urgent:
            detail["minor_disclosure"] = f"a reporter aged {row.reporter_band} reports {row.category} themself"
            detail["level"] = "high"
            confidence = max(confidence, 0.7)
        if row.description:
            detail["description"] = row.description
        if row.context.get("messages"):
            detail["messages"] = row.context["messages"]
        if row.context.get("screenshots"):
            detail["screenshots"] = row.context["screenshots"]
        return DetectionSignal(
            source="user_report", signal_type="user_report", category=CATEGORIES[row.category],
            confidence=confidence, detail=detail,
        )  # fmt: skip

    def _standing(self, s: Session, platform: str, r: UserReportIn, now: dt.datetime) -> reliability.Standing:
        """The reporter's history and the reported account's recent reporters (reliability.Standing)."""
        mine = UserReport.platform == platform, UserReport.reporter_id == r.reporter_id
        history = dict(
            s.execute(
                select(UserReport.status, func.count())
                .where(*mine, UserReport.status.in_(("actioned", "no_action")))
                .group_by(UserReport.status)
            ).all()
        )
        since = now - reliability.MASS_WINDOW
        older = select(UserReport.id).where(*mine, UserReport.created_at < since).limit(1)
        new_reporter = s.scalar(older) is None
        crowd = 0
        if r.account_id and not r.trusted and new_reporter:
            recent = set(
                s.scalars(
                    select(UserReport.reporter_id)
                    .where(
                        UserReport.platform == platform,
                        UserReport.account_id == r.account_id,
                        UserReport.created_at >= since,
                        UserReport.reporter_id != r.reporter_id,
                    )
                    .distinct()
                    .limit(1000)
                )
            )
            if len(recent) + 1 >= reliability.MASS_REPORTERS:
                established = set(
                    s.scalars(
                        select(UserReport.reporter_id)
                        .where(
                            UserReport.platform == platform,
                            UserReport.reporter_id.in_(recent),
                            UserReport.created_at < since,
                        )
                        .distinct()
                    )
                )
                crowd = len(recent - established)
        return reliability.Standing(
            trusted=r.trusted,
            actioned=history.get("actioned", 0),
            rejected=history.get("no_action", 0),
            new_reporter=new_reporter,
            new_reporters_on_account=crowd,
        )

    @staticmethod
    def _pending_reporters(s: Session, platform: str, r: UserReportIn) -> set[str]:
        """Distinct reporters whose reports about the same subject wait for a decision."""
        q = select(UserReport.reporter_id).where(UserReport.platform == platform, UserReport.status == "received")
        if r.content_id:
            q = q.where(UserReport.content_id == r.content_id)
        else:
            q = q.where(UserReport.account_id == r.account_id, UserReport.content_id.is_(None))
        return set(s.scalars(q.distinct().limit(10_000)))

    def _screenshots(self, encoded: list[str]) -> list[bytes]:
        st = self.settings
        if len(encoded) > st.user_report_max_screenshots:
            raise SafeholdError(
                "user_report.too_many_screenshots",
                f"A report attaches at most {st.user_report_max_screenshots} screenshots.",
                status=413,
            )
        out = []
        for i, text in enumerate(encoded):
            if len(text) > (st.user_report_max_screenshot_bytes * 4) // 3 + 4:
                raise _too_large(i, st.user_report_max_screenshot_bytes)
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise SafeholdError(
                    "user_report.invalid_screenshot", f"Screenshot {i} is not base64.", status=422
                ) from None
            if len(data) > st.user_report_max_screenshot_bytes:
                raise _too_large(i, st.user_report_max_screenshot_bytes)
            if not (data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")):
                raise SafeholdError(
                    "user_report.invalid_screenshot", f"Screenshot {i} is not a PNG, JPEG, GIF or WebP image.",
                    status=422,
                )  # fmt: skip
            out.append(data)
        return out

    def _preserve(self, report_id: int, case_id: int, shots: list[bytes], actor: str) -> None:
        """Keep the screenshots in the evidence store, named by the report and their position (idempotent)."""
        for i, data in enumerate(shots):
            self.evidence.preserve_bytes(
                case_id, f"user_report:{report_id}:{i}", data, kind="media", actor=actor,
                filename=f"user-report-{report_id}-{i}", metadata={"user_report": report_id},
            )  # fmt: skip

    def help(self) -> dict:
        """The help resources a child's own urgent report is answered with (the operator's, else the defaults)."""
        configured = self.settings.user_report_help or {}
        return {
            "text": str(configured.get("text") or DEFAULT_HELP["text"]),
            "links": list(configured.get("links") or DEFAULT_HELP["links"]),
        }

    # ---------------------------------------------------------------- outcome

    def case_closed(self, s: Session, case: Case, actor: str) -> int:
        """A decision closed ``case``: the reports waiting on it get their outcome and the platform one
        ``user_report.decided`` webhook each, in the decision's transaction. Returns how many reports."""
        rows = list(s.scalars(select(UserReport).where(UserReport.case_id == case.id, UserReport.status == "received")))
        now = utcnow()
        for row in rows:
            row.status = "actioned" if case.decision in VIOLATING else "no_action"
            row.decision, row.decided_at = case.decision, now
            self.webhooks.enqueue(s, EVENT, {"user_report": _outcome(row)})
        if rows:
            s.flush()
            self.audit.record(
                s, actor, "user_report.decide", f"case:{case.id}",
                {"reports": [r.id for r in rows], "decision": case.decision},
            )  # fmt: skip
        return len(rows)

    # ---------------------------------------------------------------- reading

    def get(self, report_id: int, principal: Principal) -> dict:
        """A report's status; a platform sees only its own reports (staff: all)."""
        with self.db.session() as s:
            row = s.get(UserReport, report_id)
            if row is None or not (row.platform == principal.label or allows(principal.role, Permission.CASES_READ)):
                raise NotFound("user_report.not_found", f"No user report with id {report_id}.")
            full = allows(principal.role, Permission.CASES_READ)
            return report_dict(row, full=full)

    def list(self, *, status: str | None = None, category: str | None = None, limit: int = 50,
             offset: int = 0) -> dict:  # fmt: skip
        if status is not None and status not in STATUSES:
            raise SafeholdError("user_report.invalid_status", f"status is one of {', '.join(STATUSES)}.")
        if category is not None and category not in CATEGORIES:
            raise SafeholdError("user_report.invalid_category", f"category is one of {', '.join(CATEGORIES)}.")
        limit = max(1, min(limit, MAX_LIMIT))
        q = select(UserReport)
        if status:
            q = q.where(UserReport.status == status)
        if category:
            q = q.where(UserReport.category == category)
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(q.order_by(UserReport.id.desc()).limit(limit).offset(max(0, offset)))
            return {"total": total, "reports": [report_dict(r, full=True) for r in rows]}

    # ---------------------------------------------------------------- form tokens

    def create_form_token(self, principal: Principal) -> dict:
        """A new public form token for the caller's platform, shown once (only its SHA-256 is kept)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        with self.db.session() as s:
            row = ReportFormToken(
                token_sha256=_sha(token), platform=principal.label, created_by=principal.label, created_at=utcnow()
            )
            s.add(row)
            s.flush()
            self.audit.record(s, principal.label, "user_report.form_token", f"form_token:{row.id}", {})
            return {"id": row.id, "token": token, "platform": row.platform}

    def revoke_form_token(self, token_id: int, principal: Principal) -> dict:
        with self.db.session() as s:
            row = s.get(ReportFormToken, token_id)
            if row is None or row.platform != principal.label and not allows(principal.role, Permission.CASES_READ):
                raise NotFound("user_report.token_not_found", f"No form token with id {token_id}.")
            row.revoked_at = row.revoked_at or utcnow()
            self.audit.record(s, principal.label, "user_report.form_token_revoke", f"form_token:{row.id}", {})
            return {"id": row.id, "revoked": True}

    def check_token(self, token: str) -> str:
        """The platform a form token belongs to (``user_report.invalid_token`` for an unknown or revoked one)."""
        return self._token(token).platform

    def _token(self, token: str) -> ReportFormToken:
        if not token or len(token) > 200 or not token.startswith(TOKEN_PREFIX):
            raise _bad_token()
        with self.db.session() as s:
            row = s.scalar(select(ReportFormToken).where(ReportFormToken.token_sha256 == _sha(token)))
            if row is None or row.revoked_at is not None:
                raise _bad_token()
            s.expunge(row)
            return row


def report_dict(r: UserReport, *, full: bool = False) -> dict:
    out = {
        "id": r.id,
        "status": r.status,
        "category": r.category,
        "content_id": r.content_id,
        "account_id": r.account_id,
        "reference": r.reference,
        "received_at": iso(r.created_at),
        "decided_at": iso(r.decided_at),
        "urgent": r.urgent,
    }
    if full:
        out.update(
            platform=r.platform, via=r.via, reporter_id=r.reporter_id, trusted=r.trusted,
            reporter_age_band=r.reporter_band, case_id=r.case_id, weight=r.weight, reliability=r.reliability,
            decision=r.decision, description=r.description, context=r.context,
        )  # fmt: skip
    return out


def _outcome(r: UserReport) -> dict:
    return {
        "id": r.id,
        "reference": r.reference,
        "reporter_id": r.reporter_id,
        "category": r.category,
        "content_id": r.content_id,
        "account_id": r.account_id,
        "outcome": r.status,
        "decided_at": iso(r.decided_at),
    }


def _digest(body: object) -> str:
    data = {k: v for k, v in body.items() if k != "idempotency_key"} if isinstance(body, dict) else body
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _bad_token() -> SafeholdError:
    return SafeholdError(
        "user_report.invalid_token", "This report form's link is not valid (unknown or revoked token).", status=403
    )


def _too_large(i: int, limit: int) -> SafeholdError:
    return SafeholdError(
        "user_report.screenshot_too_large", f"Screenshot {i} is larger than {limit} bytes.", status=413
    )
