"""Reports to authorities: drafted from confirmed cases, reviewed, submitted, filed, tracked.

A report covers one incident (:func:`drafts.incident_key`): an account's confirmed cases go into one report
while it is a draft. Drafting preserves the cases' evidence (:class:`EvidenceService`) and lists each media file
once. Status: ``draft`` → ``submitted`` (queued; the worker files it) → ``finished`` (NCMEC's report id in
``external_id``); or ``failed`` (a terminal error: edit and submit again) or ``retracted``. Reports to
authorities without an API are exported as a package and marked filed by hand (:mod:`authorities`).

Every change is an audit record on ``report:<id>``: ``report.draft``, ``report.update``, ``report.submit``,
``report.filed`` / ``report.failed`` (filing outcomes, also ``report.restart``), ``report.retract``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.actions.service import INTERNAL_KINDS
from safehold.audit import AuditService
from safehold.cases.service import CaseService, lock_writes
from safehold.cases.taxonomy import VIOLATING
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.reporting import drafts
from safehold.reporting.authorities import AUTHORITIES, find
from safehold.reporting.cybertipline.builder import file_details_xml, report_xml
from safehold.reporting.cybertipline.client import CyberTiplineClient, CyberTiplineError
from safehold.reporting.filing import Filer, environment
from safehold.store.db import Database
from safehold.store.models import Case, CaseAction, CaseItem, Report, ReportCase, ReportFile, iso, utcnow

log = logging.getLogger(__name__)

STATUSES = ("draft", "submitted", "finished", "failed", "retracted")
EDITABLE = ("draft", "failed")
MAX_LIMIT = 500
MAX_REASON = 2000
#: Who carries out policies' internal actions (evidence preservation, report drafts).
FOLLOWUP = "system:followup"
FOLLOWUP_BATCH = 100
API_AUTHORITIES = tuple(name for name, a in AUTHORITIES.items() if a.files_by_api)


class ReportService:
    def __init__(self, db: Database, audit: AuditService, cases: CaseService, evidence, settings: Settings):
        self.db, self.audit, self.cases, self.evidence, self.settings = db, audit, cases, evidence, settings
        self.filer = Filer(db, audit, evidence, settings)
        self._on_submit: list = []

    def on_submit(self, callback) -> None:
        """Call ``callback()`` after a report is queued (the worker wakes instead of waiting for its poll)."""
        self._on_submit.append(callback)

    # ------------------------------------------------------------------ drafts

    def draft_from_case(self, case_id: int, actor: str, authority: str = "ncmec") -> dict:
        """Put a confirmed case into its incident's draft report (creating it if there is none); returns the
        report (:meth:`get`). Idempotent: a case already in a report to this authority (not retracted) returns
        that report. Only a closed case with a violating decision (``csam``/``cse``) can be reported
        (``report.not_confirmed``). The case's evidence is preserved first; each media file is listed once."""
        authority_name = find(authority).name
        with self.db.session() as s:
            case = s.get(Case, case_id)
            if case is None:
                raise NotFound("case.not_found", f"No case with id {case_id}.")
            if case.status != "closed" or case.decision not in VIOLATING:
                raise Conflict("report.not_confirmed", f"Case {case_id} has no confirmed finding of abuse to report.")
            existing = _report_of(s, case_id, authority_name)
            media = [i for i in s.scalars(select(CaseItem.id).where(CaseItem.case_id == case_id,
                                                                    CaseItem.media_key.is_not(None)))]  # fmt: skip
        if existing is not None:
            return self.get(existing)
        self.evidence.preserve_case(case_id, actor)
        evidence = {item_id: self.evidence.for_item(item_id) for item_id in media}
        for _ in range(3):
            try:
                with self.db.session() as s:
                    report_id = self._join_or_create(s, case_id, authority_name, actor, evidence)
                return self.get(report_id)
            except IntegrityError:  # another process drafted the same incident at the same moment: join it
                continue
        raise Conflict("report.busy", f"The report for case {case_id} is changing too fast; retry.")

    def _join_or_create(self, s: Session, case_id: int, authority_name: str, actor: str, evidence: dict) -> int:
        lock_writes(s)
        existing = _report_of(s, case_id, authority_name)
        if existing is not None:
            return existing
        case = s.get(Case, case_id)
        key = drafts.incident_key(case)
        open_key = f"{authority_name}:{key}"
        report = s.scalars(select(Report).where(Report.open_key == open_key).with_for_update()).first()
        joined = report is not None
        if report is None:
            report = Report(authority=authority_name, incident_key=key, open_key=open_key, account_id=case.account_id,
                            status="draft", fields=drafts.initial_fields(case), created_by=actor)  # fmt: skip
            s.add(report)
            s.flush()
        else:
            report.fields = drafts.join_fields(report.fields or {}, case)
            report.updated_at = utcnow()
        s.add(ReportCase(report_id=report.id, case_id=case_id))
        have = set(s.scalars(select(ReportFile.sha256).where(ReportFile.report_id == report.id)))
        added = 0
        for item in s.scalars(select(CaseItem).where(CaseItem.case_id == case_id).order_by(CaseItem.id)):
            if item.media_key is None or item.sha256 in have:
                continue
            kept = evidence.get(item.id) or {}
            s.add(ReportFile(report_id=report.id, case_item_id=item.id, evidence_id=kept.get("id"), sha256=item.sha256,
                             md5=item.md5 or kept.get("md5"), filename=item.filename, fields={}))  # fmt: skip
            have.add(item.sha256)
            added += 1
        s.flush()
        detail = {"case_id": case_id, "authority": authority_name, "incident_key": key, "joined": joined,
                  "files_added": added}  # fmt: skip
        self.audit.record(s, actor, "report.draft", f"report:{report.id}", detail)
        return report.id

    # -------------------------------------------------------------------- read

    def list(
        self,
        *,
        status: str | None = None,
        authority: str | None = None,
        case_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict]:
        """Reports, newest first, as summaries: :meth:`get`'s report fields without ``cases``/``files``/
        ``ip_events``/``urls``, plus ``case_ids`` and ``file_count``."""
        if status is not None and status not in STATUSES:
            raise SafeholdError("report.invalid_filter", f"status must be one of {', '.join(STATUSES)}.")
        if authority is not None and authority not in AUTHORITIES:
            raise SafeholdError("report.invalid_filter", f"authority must be one of {', '.join(AUTHORITIES)}.")
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            raise SafeholdError("request.invalid_limit", f"limit must be between 1 and {MAX_LIMIT}, offset >= 0.")
        q = select(Report)
        if status:
            q = q.where(Report.status == status)
        if authority:
            q = q.where(Report.authority == authority)
        if case_id is not None:
            q = q.where(Report.id.in_(select(ReportCase.report_id).where(ReportCase.case_id == case_id)))
        q = q.order_by(Report.created_at.desc(), Report.id.desc()).limit(limit).offset(offset)
        with self.db.session() as s:
            reports = list(s.scalars(q))
            ids = [r.id for r in reports]
            cases: dict[int, list[int]] = {}
            for rid, cid in s.execute(select(ReportCase.report_id, ReportCase.case_id)
                                      .where(ReportCase.report_id.in_(ids)).order_by(ReportCase.case_id)):  # fmt: skip
                cases.setdefault(rid, []).append(cid)
            counts = dict(s.execute(select(ReportFile.report_id, func.count()).where(ReportFile.report_id.in_(ids))
                                    .group_by(ReportFile.report_id)).all())  # fmt: skip
        return [{**_summary(r), "case_ids": cases.get(r.id, []), "file_count": counts.get(r.id, 0)} for r in reports]

    def get(self, report_id: int) -> dict:
        """The report::

            {id, authority, authority_title, files_by_api, incident_key, account_id, status, fields,
             external_id, environment, step, attempts, next_attempt_at, last_code, last_error, document_sha256,
             filing (a run holds it now), created_by, created_at, updated_at, submitted_by, submitted_at,
             finished_at, retracted_by, retracted_at,
             incident_at, ip_events: [{ip, event, at}], urls: [..],
             cases: [{id, decision, classification, account_id, content_id, closed_at}],
             files: [{id, case_item_id, evidence_id, sha256, md5, filename, fields, classification,
                      viewed_by_esp, exif_viewed_by_esp, viewed: {reveals: [..], exif_views: [..]},
                      file_id, upload_started_at, uploaded_at, described_at}]}

        ``fields``: incident_type, annotations, escalate_to_high_priority, incident_description,
        additional_info, reported_user {screen_name, display_name, profile_url, email, esp_identifier}. A file's
        viewed flags are as filed once it was described, else as they would be filed now (from the audit log).
        """
        with self.db.session() as s:
            snap = drafts.snapshot(s, _report(s, report_id))
        out = _summary(snap.report)
        out.update(
            incident_at=iso(drafts.incident_at(snap)) if snap.cases else None,
            ip_events=[{"ip": e.ip, "event": e.event, "at": iso(e.at)} for e in drafts.ip_events(snap)],
            urls=drafts.urls(snap),
            cases=[
                {
                    "id": c.id,
                    "decision": c.decision,
                    "classification": c.classification,
                    "account_id": c.account_id,
                    "content_id": c.content_id,
                    "closed_at": iso(c.closed_at),
                }
                for c in snap.cases
            ],  # fmt: skip
            files=[_file(snap, f) for f in snap.files],
        )
        return out

    def document(self, report_id: int) -> bytes:
        """The ``<report>`` XML as it would be filed now, validated against the schema."""
        with self.db.session() as s:
            snap = drafts.snapshot(s, _report(s, report_id))
        return report_xml(drafts.cybertip_report(snap, self.settings), self.filer.schema())

    # ------------------------------------------------------------------- edits

    def update(self, report_id: int, changes: dict, actor: str) -> dict:
        """Change a draft's (or failed report's) fields: ``incident_type``, ``annotations``,
        ``escalate_to_high_priority``, ``incident_description``, ``additional_info``, ``reported_user`` (replaced
        whole), ``files`` (``{report_file_id: {annotations, relevance, publicly_available}}``). Values are
        checked against the loaded schema (``report.invalid_field``). Returns :meth:`get`."""
        with self.db.session() as s:
            lock_writes(s)
            report = _report(s, report_id, lock=True)
            if report.status not in EDITABLE:
                raise Conflict("report.not_editable", f"Report {report_id} is {report.status}; it cannot be edited.")
            files = {f.id: f for f in s.scalars(select(ReportFile).where(ReportFile.report_id == report_id))}
            fields, file_changes = drafts.check_changes(changes, self.filer.schema(), set(files))
            report.fields = {**(report.fields or {}), **fields}
            for file_id, values in file_changes.items():
                files[file_id].fields = {**(files[file_id].fields or {}), **values}
            report.updated_at = utcnow()
            s.flush()
            detail = {"fields": sorted(fields), "files": sorted(file_changes)}
            self.audit.record(s, actor, "report.update", f"report:{report_id}", detail)
        return self.get(report_id)

    # ------------------------------------------------------------------ filing

    def submit(self, report_id: int, actor: str, *, wait: bool = False) -> dict:
        """Queue a draft or failed report for filing (``submitted``); the worker files it. The document is
        validated first, and filing with NCMEC needs credentials (``cybertip.not_configured``, 409). With
        ``wait`` it is filed now and the final state returned. Submitting a submitted report changes nothing.
        Authorities without an API: ``submitted`` means "to be filed by hand" (export, then :meth:`mark_filed`).
        Returns :meth:`get`."""
        with self.db.session() as s:
            report = _report(s, report_id)
            status, hotline = report.status, find(report.authority)
        if status == "submitted":
            return self.get(report_id)
        if status not in EDITABLE:
            raise Conflict("report.not_submittable", f"Report {report_id} is {status}; it cannot be submitted.")
        if hotline.files_by_api:
            CyberTiplineClient.from_settings(self.settings).close()  # credentials are there
            self._validate(report_id)
        now = utcnow()
        with self.db.session() as s:
            done = _move(
                s,
                report_id,
                Report.status.in_(EDITABLE),
                status="submitted",
                open_key=None,
                submitted_by=actor,
                submitted_at=now,
                attempts=0,
                next_attempt_at=now,
                last_code=None,
                last_error=None,
            )
            if not done:
                raise Conflict("report.changed", f"Report {report_id} changed meanwhile; reload it.")
            detail = {"authority": hotline.name}
            if hotline.files_by_api:
                detail["environment"] = environment(self.settings.cybertip_url)
            self.audit.record(s, actor, "report.submit", f"report:{report_id}", detail)
        for callback in self._on_submit:
            callback()
        if wait and hotline.files_by_api:
            self.filer.file(report_id)
        return self.get(report_id)

    def _validate(self, report_id: int) -> None:
        """Build the report and every file's details (with placeholder NCMEC ids) and validate them: a document
        NCMEC would refuse is refused here, before anything is sent."""
        with self.db.session() as s:
            snap = drafts.snapshot(s, _report(s, report_id))
        schema = self.filer.schema()
        report_xml(drafts.cybertip_report(snap, self.settings), schema)
        for f in snap.files:
            file_details_xml(drafts.file_details(snap, f, "1", "pending"), schema)

    def file_due(self, limit: int = 5) -> int:
        """One worker round: file up to ``limit`` submitted reports that are due (not waiting for a retry, not
        held by another run). Returns how many runs were made."""
        now = utcnow()
        with self.db.session() as s:
            ids = list(
                s.scalars(
                    select(Report.id)
                    .where(
                        Report.status == "submitted",
                        Report.authority.in_(API_AUTHORITIES),
                        or_(Report.next_attempt_at.is_(None), Report.next_attempt_at <= now),
                        or_(Report.lease_until.is_(None), Report.lease_until < now),
                    )
                    .order_by(Report.next_attempt_at, Report.id)
                    .limit(limit)
                )
            )
        for report_id in ids:
            self.filer.file(report_id)
        return len(ids)

    def retract(self, report_id: int, actor: str, reason: str) -> dict:
        """Withdraw a report: a draft is discarded; a submitted or failed NCMEC report is retracted at NCMEC
        first when it was opened there (NCMEC cancels only unfinished reports); a finished report cannot be
        (``report.finished``). Retracting a retracted report changes nothing. Returns :meth:`get`."""
        reason = (reason or "").strip()
        if not reason or len(reason) > MAX_REASON:
            raise SafeholdError("report.invalid_reason", f"Give a reason (at most {MAX_REASON} characters).")
        with self.db.session() as s:
            report = _report(s, report_id)
            status, hotline = report.status, find(report.authority)
        if status == "retracted":
            return self.get(report_id)
        if status == "finished":
            raise Conflict("report.finished", f"Report {report_id} was filed; a filed report cannot be retracted.")
        if status == "draft" or not hotline.files_by_api:
            now = utcnow()
            with self.db.session() as s:
                done = _move(
                    s,
                    report_id,
                    Report.status == status,
                    status="retracted",
                    open_key=None,
                    retracted_by=actor,
                    retracted_at=now,
                    next_attempt_at=None,
                )
                if not done:
                    raise Conflict("report.changed", f"Report {report_id} changed meanwhile; reload it.")
                detail = {"reason": reason, "external_id": None, "retracted_at_ncmec": False}
                self.audit.record(s, actor, "report.retract", f"report:{report_id}", detail)
        else:
            self.filer.retract(report_id, actor, reason)
        return self.get(report_id)

    def mark_filed(self, report_id: int, external_id: str, actor: str) -> dict:
        """Record that an operator filed a report by hand with an authority that has no API, under the
        reference it gave (``external_id``): ``finished``. Returns :meth:`get`."""
        external_id = (external_id or "").strip()
        if not external_id or len(external_id) > 64:
            raise SafeholdError("report.invalid_field", "external_id is the authority's reference (1-64 characters).")
        with self.db.session() as s:
            report = _report(s, report_id)
            hotline = find(report.authority)
        if hotline.files_by_api:
            raise Conflict("report.files_by_api", f"{hotline.title} reports are filed through its API: submit it.")
        now = utcnow()
        with self.db.session() as s:
            done = _move(
                s,
                report_id,
                Report.status.in_(("draft", "submitted", "failed")),
                status="finished",
                step="finished",
                open_key=None,
                external_id=external_id,
                finished_at=now,
                submitted_by=func.coalesce(Report.submitted_by, actor),
                submitted_at=func.coalesce(Report.submitted_at, now),
            )
            if not done:
                raise Conflict("report.not_submittable", f"Report {report_id} is finished or retracted.")
            detail = {"external_id": external_id, "authority": hotline.name, "manual": True}
            self.audit.record(s, actor, "report.filed", f"report:{report_id}", detail)
        return self.get(report_id)

    def export(self, report_id: int, actor: str, dest_dir: Path | None = None) -> dict:
        """The package an operator files by hand (or hands to law enforcement): a zip with the files, a manifest
        of their hashes, the report record and ``submission.json`` (the authority's structured record, see
        :meth:`Hotline.package`). Returns the evidence export's ``{path, sha256, files, bytes}``."""
        report = self.get(report_id)
        hotline = find(report["authority"])
        return self.evidence.export(
            report_id=report_id,
            actor=actor,
            reason=f"report {report_id} for {hotline.title}",
            dest_dir=dest_dir,
            records={"submission": hotline.package(report)},
        )

    def check_connection(self) -> dict:
        """``GET /status`` with the configured credentials: ``{ok, url, environment, message, code,
        response_code}`` (code/response_code set when not ok). No credentials: ``cybertip.not_configured``."""
        url = self.settings.cybertip_url
        out = {"url": url, "environment": environment(url), "code": None, "response_code": None}
        with CyberTiplineClient.from_settings(self.settings) as client:
            try:
                return {**out, "ok": True, "message": client.status()}
            except CyberTiplineError as e:
                return {**out, "ok": False, "message": e.message, "code": e.code, "response_code": e.response_code}

    # --------------------------------------------------------------- follow-up

    def followup_once(self) -> int:
        """Carry out policies' internal actions (``preserve_evidence``, ``open_report_draft``) not yet done, and
        mark them done. At least once: a failure is logged and the action retried next round (both operations
        are idempotent); one refused for good (e.g. the case is not confirmed) is logged and marked done.
        Returns how many were marked done."""
        with self.db.session() as s:
            rows = s.execute(
                select(CaseAction.id, CaseAction.kind, CaseAction.case_id)
                .where(CaseAction.kind.in_(INTERNAL_KINDS), CaseAction.done_at.is_(None))
                .order_by(CaseAction.id)
                .limit(FOLLOWUP_BATCH)
            ).all()
        done = 0
        for action_id, kind, case_id in rows:
            try:
                if case_id is None:
                    pass  # the case was deleted: nothing left to act on
                elif kind == "preserve_evidence":
                    self.evidence.preserve_case(case_id, FOLLOWUP)
                else:
                    self.draft_from_case(case_id, FOLLOWUP)
            except SafeholdError as e:
                if e.status >= 500:
                    log.exception("follow-up of action %s (%s) failed; retrying next round", action_id, kind)
                    continue
                log.warning("follow-up of action %s (%s) refused: %s %s", action_id, kind, e.code, e.message)
            except Exception:
                log.exception("follow-up of action %s (%s) failed; retrying next round", action_id, kind)
                continue
            with self.db.session() as s:
                done += s.execute(
                    update(CaseAction)
                    .where(CaseAction.id == action_id, CaseAction.done_at.is_(None))
                    .values(done_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
        return done


# ------------------------------------------------------------------ helpers


def _report(s: Session, report_id: int, *, lock: bool = False) -> Report:
    q = select(Report).where(Report.id == report_id).execution_options(populate_existing=True)
    report = s.scalars(q.with_for_update() if lock else q).first()
    if report is None:
        raise NotFound("report.not_found", f"No report with id {report_id}.")
    return report


def _move(s: Session, report_id: int, condition, **values) -> bool:
    """Change the report only if ``condition`` still holds (a compare-and-set against concurrent edits)."""
    values.setdefault("updated_at", utcnow())
    q = update(Report).where(Report.id == report_id, condition).values(**values)
    return bool(s.execute(q.execution_options(synchronize_session=False)).rowcount)


def _report_of(s: Session, case_id: int, authority_name: str) -> int | None:
    """The report to ``authority_name`` (not retracted) that already holds the case."""
    return s.scalar(
        select(Report.id)
        .join(ReportCase, ReportCase.report_id == Report.id)
        .where(ReportCase.case_id == case_id, Report.authority == authority_name, Report.status != "retracted")
        .limit(1)
    )


def _summary(r: Report) -> dict:
    hotline = AUTHORITIES.get(r.authority)
    return {
        **r.record(),
        "authority_title": hotline.title if hotline else r.authority,
        "files_by_api": bool(hotline and hotline.files_by_api),
        "step": r.step,
        "attempts": r.attempts,
        "next_attempt_at": iso(r.next_attempt_at),
        "last_code": r.last_code,
        "last_error": r.last_error,
        "filing": r.lease_until is not None and r.lease_until > utcnow(),
        "updated_at": iso(r.updated_at),
    }


def _file(snap: drafts.Snapshot, f: ReportFile) -> dict:
    return {
        **f.record(),
        "classification": drafts.file_classification(snap, f),
        **drafts.file_view(snap, f),
        "upload_started_at": iso(f.upload_started_at),
    }
