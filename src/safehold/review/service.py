"""Human review: viewing a case, seeing its media safely, deciding, and the second reviewer's confirmation.

A finding of abuse (``csam`` or ``cse``) on material no hash list knew is not final until a second person
agrees: the case waits in ``awaiting_confirmation`` and only the confirmation closes it and fires the platform
actions (EU Regulation 2021/1232 requires human confirmation before such material is reported). A finding on a
known match (a block-bank hash matched) closes at once. A disagreement escalates the case to a senior reviewer.

Every reveal of clear media is one ``media.reveal`` audit record (who, when, which file), written in the same
transaction that checks the reviewer's daily cap, so reports can state truthfully whether a human viewed a
file and the cap cannot be overrun by parallel requests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from safehold.actions.service import ActionService
from safehold.audit import AuditService
from safehold.audit.service import format_at
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, allows
from safehold.banks.service import BankService
from safehold.cases import priority as prio
from safehold.cases.service import CaseService, close
from safehold.cases.taxonomy import CLASSIFICATIONS, CSE_KINDS, DECISIONS, VIOLATING
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.review import media, outcomes
from safehold.review.wellness import REVEAL, WellnessService, count_reveals
from safehold.store.db import Database
from safehold.store.models import AuditRecord, Case, CaseDecision, utcnow
from safehold.store.vault import MediaVault

#: A reviewer re-opening the same case within this window is not recorded again.
VIEW_EVERY = dt.timedelta(minutes=10)
MAX_NOTE = 10_000


def check_decision(decision: str, classification: str | None) -> str | None:
    """The classification a decision needs (``csam``: A1/A2/B1/B2; ``cse``: a kind of exploitation; none for
    the others); raises ``review.invalid_decision``."""
    if decision not in DECISIONS:
        raise SafeholdError("review.invalid_decision", f"The decision must be one of {', '.join(DECISIONS)}.")
    needed = {"csam": CLASSIFICATIONS, "cse": CSE_KINDS}.get(decision)
    if needed is None:
        if classification:
            raise SafeholdError("review.invalid_decision", f"A {decision!r} decision takes no classification.")
        return None
    if classification not in needed:
        raise SafeholdError(
            "review.invalid_decision",
            f"A {decision!r} decision needs a classification: one of {', '.join(needed)}.",
            detail={"field": "classification"},
        )
    return classification


def _note(note: str | None) -> str | None:
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise SafeholdError("review.invalid_note", f"A note is at most {MAX_NOTE} characters.")
    return note


def escalate(case: Case, sla: dict[str, float], now: dt.datetime) -> None:
    """Send the case to the senior reviewers, one band more urgent (its priority raised to that band's floor,
    so lists sort it with its new band and ageing never lowers it again)."""
    case.status = "escalated"
    case.claimed_by = case.claim_expires_at = None
    case.band = prio.escalated(case.band)
    case.priority = max(case.priority or 0.0, prio.floor(case.band))
    case.due_at = prio.due_at(case.opened_at, case.band, sla)
    case.updated_at = now


class ReviewService:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        cases: CaseService,
        actions: ActionService,
        vault: MediaVault,
        banks: BankService,
        wellness: WellnessService,
        settings: Settings,
    ):
        self.db, self.audit, self.cases, self.actions = db, audit, cases, actions
        self.vault, self.banks, self.wellness, self.settings = vault, banks, wellness, settings
        self._on_closed: list[Callable[[Session, Case, str], object]] = []

    def on_closed(self, hook: Callable[[Session, Case, str], object]) -> None:
        """Call ``hook(session, case, actor)`` when a decision closes a case, in the decision's transaction (the
        user reports waiting on the case get their outcome: safehold.intake, a layer above this one)."""
        self._on_closed.append(hook)

    # ------------------------------------------------------------------ viewing

    def view(self, case_id: int, principal: Principal) -> dict:
        """The full case record; the view is recorded (``case.view``) once per reviewer per case per
        ``VIEW_EVERY``, so the history shows who looked without a record per page reload."""
        case = self.cases.get(case_id)
        actor, target = principal.label, f"case:{case_id}"
        with self.db.session() as s:
            recent = s.scalar(
                select(AuditRecord.seq)
                .where(
                    AuditRecord.actor == actor,
                    AuditRecord.action == "case.view",
                    AuditRecord.at >= utcnow() - VIEW_EVERY,
                    AuditRecord.target == target,
                )
                .limit(1)
            )
            if recent is None:
                self.audit.record(s, actor, "case.view", target, {})
        return case

    def _media(self, item_id: int) -> tuple[dict, bytes]:
        item = self.cases.item(item_id)
        if not item["has_media"]:
            raise NotFound("review.no_media", f"Case item {item_id} has no stored media.")
        return item, self.vault.get(item["sha256"])

    def preview(self, item_id: int, principal: Principal) -> tuple[bytes, str]:
        """A small, blurred, greyscale rendering made on the server: not a reveal, not recorded as one."""
        item, data = self._media(item_id)
        return media.preview(data, item["media_type"], item["filename"])

    def _frame(self, item_id: int, number: int) -> tuple[dict, dict, bytes]:
        """A video item's matched frame ``number`` (``item.metadata.frames``, kept by the pipeline when a
        keyframe matched an image bank): the item, the frame's record and its PNG."""
        item = self.cases.item(item_id)
        frames = (item.get("metadata") or {}).get("frames")
        if not isinstance(frames, list) or not 0 <= number < len(frames) or not isinstance(frames[number], dict):
            raise NotFound("review.no_media", f"Case item {item_id} has no matched frame {number}.")
        frame = frames[number]
        return item, frame, self.vault.get(str(frame.get("sha256", "")))

    def preview_frame(self, item_id: int, number: int, principal: Principal) -> tuple[bytes, str]:
        """A matched frame's blurred, greyscale preview (as :meth:`preview`): not a reveal."""
        _, _, data = self._frame(item_id, number)
        return media.preview(data, "image")

    def reveal_frame(self, item_id: int, number: int, principal: Principal) -> tuple[bytes, str]:
        """A matched frame in the clear: a reveal of its video item (recorded and capped as :meth:`reveal`; the
        record names the frame and when it is shown)."""
        item, frame, data = self._frame(item_id, number)
        detail = {"frame": number, "timestamp": frame.get("timestamp"), "frame_sha256": frame.get("sha256")}
        self._record_reveal(item, principal, detail)
        return data, media.content_type(data)

    def reveal(self, item_id: int, principal: Principal) -> tuple[bytes, str]:
        """The clear media. Recorded (``media.reveal``) and counted against the caller's daily cap in one
        transaction: at the cap it is refused (429 ``review.exposure_cap``) and nothing is recorded."""
        item, data = self._media(item_id)
        self._record_reveal(item, principal, {})
        return data, media.content_type(data, item["filename"])

    def _record_reveal(self, item: dict, principal: Principal, extra: dict) -> None:
        actor = principal.label
        cap = self.wellness.effective(self.wellness.user_prefs(principal.user_id))["daily_cap"]
        detail = {
            "case_id": item["case_id"],
            "sha256": item["sha256"],
            "filename": item["filename"],
            "media_type": item["media_type"],
            **extra,
        }
        with self.db.session() as s:
            self.audit.record(s, actor, REVEAL, f"case_item:{item['id']}", detail)  # takes the audit lock
            today, _ = count_reveals(s, actor, utcnow())
            if today > cap:  # rolls back the record just written
                raise SafeholdError(
                    "review.exposure_cap",
                    f"You have revealed {cap} items today, your daily limit. Please stop for today.",
                    status=429,
                    detail={"today": today - 1, "cap": cap},
                )

    def exif(self, item_id: int, principal: Principal) -> dict:
        """The file's EXIF / container metadata as JSON (no pixels); recorded as ``media.exif_view``."""
        item, data = self._media(item_id)
        out = media.metadata(data, item["media_type"], item["filename"])
        target = f"case_item:{item_id}"
        self.audit.record(None, principal.label, "media.exif_view", target, {"case_id": item["case_id"]})
        return out

    def reveals(self, item_id: int) -> list[dict]:
        """Who revealed this file and when, oldest first (what a report says about human viewing)."""
        q = (
            select(AuditRecord)
            .where(AuditRecord.target == f"case_item:{item_id}", AuditRecord.action == REVEAL)
            .order_by(AuditRecord.seq)
        )
        with self.db.session() as s:
            return [{"seq": r.seq, "actor": r.actor, "at": format_at(r.at)} for r in s.scalars(q)]

    # ---------------------------------------------------------------- deciding

    def decide(
        self,
        case_id: int,
        principal: Principal,
        decision: str,
        classification: str | None = None,
        note: str | None = None,
    ) -> dict:
        """Record a reviewer's decision on a case they have claimed (escalated cases: senior reviewers, no
        claim needed). See the module docstring for where each decision leads."""
        classification = check_decision(decision, classification)
        note = _note(note)
        actor = principal.label
        senior = allows(principal.role, Permission.CASES_SENIOR)
        sla = self.cases.sla_hours()
        now = utcnow()
        with self.db.session() as s:
            peek = s.scalar(select(Case.status).where(Case.id == case_id))
            self._check_decidable(peek, senior, case_id)
            case = self.cases.locked_for(s, case_id, actor, override=peek == "escalated")
            self._check_decidable(case.status, senior, case_id)  # it may have changed before the lock
            s.add(CaseDecision(case_id=case_id, kind="decide", decision=decision, classification=classification,
                               note=note, actor=actor, at=now))  # fmt: skip
            fire = False
            if decision == "escalate":
                escalate(case, sla, now)
            else:
                case.decision, case.classification = decision, classification
                case.decided_by, case.decided_at = actor, now
                case.confirmed_by = case.confirmed_at = None
                if decision == "not_violating" or case.known_match:
                    close(case, now)
                    fire = decision in VIOLATING
                else:  # new material: a second reviewer must agree before anything is reported
                    case.status = "awaiting_confirmation"
                    case.claimed_by = case.claim_expires_at = None
                case.updated_at = now
            s.flush()
            self._finish(s, case, actor, "case.decide", fire, decision=decision, classification=classification)
        return self.cases.get(case_id)

    def confirm(self, case_id: int, principal: Principal, agree: bool, note: str | None = None) -> dict:
        """A second reviewer's verdict on a finding awaiting confirmation: agreeing closes the case and fires
        its actions; disagreeing escalates it to a senior reviewer."""
        note = _note(note)
        actor = principal.label
        sla = self.cases.sla_hours()
        now = utcnow()
        with self.db.session() as s:
            case = self.cases.locked_for(s, case_id, actor, override=True)  # no claim: the case is unclaimed
            if case.status != "awaiting_confirmation":
                raise Conflict("review.not_awaiting", f"Case {case_id} is not waiting for a confirmation.")
            if case.decided_by == actor:
                raise Conflict(
                    "review.same_reviewer", "The confirmation must come from another reviewer than the decision."
                )
            kind = "confirm" if agree else "overturn"
            s.add(CaseDecision(case_id=case_id, kind=kind, decision=case.decision,
                               classification=case.classification, note=note, actor=actor, at=now))  # fmt: skip
            if agree:
                close(case, now)
                case.confirmed_by, case.confirmed_at = actor, now
                case.updated_at = now
            else:
                escalate(case, sla, now)
            s.flush()
            self._finish(s, case, actor, f"case.{kind}", agree, decided_by=case.decided_by)
        return self.cases.get(case_id)

    @staticmethod
    def _check_decidable(status: str | None, senior: bool, case_id: int) -> None:
        """Refuse a decision the case's status does not allow (before the claim check, for a clear error)."""
        if status is None:
            raise NotFound("case.not_found", f"No case with id {case_id}.")
        if status == "escalated" and not senior:
            raise SafeholdError(
                "review.senior_required", f"Case {case_id} is escalated: a senior reviewer decides it.", status=403
            )
        if status == "awaiting_confirmation":
            raise Conflict(
                "review.awaiting_confirmation",
                f"Case {case_id} waits for a second reviewer's confirmation, not a new decision.",
            )

    def _finish(self, s: Session, case: Case, actor: str, action: str, fire: bool, **detail) -> None:
        """Fire the decision's policies (same transaction: a finding and its actions commit together), keep the
        labelled outcomes of the case's classifier hits if the decision closed it (safehold.review.outcomes), then
        write the audit record, last."""
        fired = self.actions.for_decision(s, case, actor) if fire else []
        labelled = outcomes.record(s, case, actor)
        if case.status == "closed":
            for hook in self._on_closed:
                hook(s, case, actor)
        if labelled:
            detail["classifier_outcomes"] = labelled
        detail.update(status=case.status, band=case.band, actions=len(fired))
        self.audit.record(s, actor, action, f"case:{case.id}", detail)

    # ------------------------------------------------------------------- banks

    def add_to_bank(self, case_id: int, item_id: int, bank: str, principal: Principal) -> dict:
        """Add a confirmed item's hashes to a block bank, so re-uploads match from now on (one click)."""
        item = self.cases.item(item_id)
        if item["case_id"] != case_id:
            raise NotFound("review.item_not_in_case", f"Item {item_id} is not part of case {case_id}.")
        with self.db.session() as s:
            case = s.get(Case, case_id)
            if case is None:
                raise NotFound("case.not_found", f"No case with id {case_id}.")
            status, decision, classification = case.status, case.decision, case.classification
        if status != "closed" or decision not in VIOLATING:
            raise Conflict("review.not_confirmed", "Only items of a closed case with a confirmed finding go to a bank.")
        if self.banks.get(bank).kind != "block":
            raise Conflict("review.bank_not_block", f"Bank {bank!r} is an allow bank; choose a block bank.")
        _, data = self._media(item_id)
        added = self.banks.add_file(
            bank,
            data,
            filename=item["filename"],
            added_by=principal.label,
            category=classification,
            source="review",
            external_id=f"case:{case_id}:item:{item_id}",
            note=f"case {case_id}",
        )
        detail = {"item_id": item_id, "bank": bank, "added": added["added"], "duplicates": added["duplicates"]}
        self.audit.record(None, principal.label, "case.add_to_bank", f"case:{case_id}", detail)
        return {**added, "case_id": case_id, "item_id": item_id}
