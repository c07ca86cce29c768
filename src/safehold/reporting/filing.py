"""Filing one report with NCMEC's CyberTipline: a resumable state machine that never files a report twice.

Each step's outcome is committed before the next request is sent::

    lease → /submit (external_id, document_sha256, step "opened")
          → per file: upload_started_at, /upload, file_id
          → per file: viewed flags frozen, /fileinfo, described_at
          → the document preserved as evidence (step "finishing") → /finish → finished

A run that dies anywhere leaves a state the next run resumes from:

- a file whose upload started but has no ``file_id`` (the answer was lost: NCMEC may hold the file or not) →
  ``/retract`` the NCMEC report and start again from ``/submit``, so no file is ever there twice;
- the document no longer matches what was submitted (a failed report was edited) → the same;
- ``5001`` anywhere (NCMEC deletes unfinished reports 1 h after their last change) → start again from ``/submit``;
- a ``/finish`` whose answer was lost → ``/finish`` again: ``5102`` (already finished) means it was → finished.

A ``/submit`` whose answer was lost leaves a report at NCMEC whose id we never learnt; it is never finished and
NCMEC deletes it, so it is not a duplicate report. Only the lease holder files: the lease is one conditional
``UPDATE`` with a token per run, renewed by every write, and every write after it is conditional on the token
(a run whose lease lapsed and was taken over stops at its next write, :class:`LeaseLost`).

Retryable errors (``1000``, network, HTTP 5xx, lost answers) count an attempt and schedule the next with
exponential back-off; after ``cybertip_max_attempts`` the report fails. Others (``2000``, ``3000``, ``4100``, our
own validation) fail it at once with the code and message, to be fixed and submitted again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import or_, select, update

from safehold.audit import AuditService
from safehold.backoff import retry_delay
from safehold.config import Settings
from safehold.errors import Conflict, SafeholdError
from safehold.reporting import drafts
from safehold.reporting.cybertipline.builder import file_details_xml, report_xml
from safehold.reporting.cybertipline.client import (
    ALREADY_FINISHED,
    NO_SUCH_REPORT,
    CyberTiplineClient,
    CyberTiplineError,
)
from safehold.reporting.cybertipline.schema import Schema
from safehold.store.db import Database
from safehold.store.models import Report, ReportFile, utcnow

log = logging.getLogger(__name__)

#: Who files (audit records, evidence access).
SYSTEM = "system:cybertipline"
#: Seconds a lease outlives the slowest request (time to write its outcome).
LEASE_GRACE = 60.0
PRODUCTION_HOST = "report.cybertip.org"
#: A file's filing state, cleared when a report is started again from ``/submit``.
FILE_RESET = {
    "file_id": None,
    "upload_started_at": None,
    "uploaded_at": None,
    "described_at": None,
    "viewed_by_esp": None,
    "exif_viewed_by_esp": None,
    "viewed": {},
}
MAX_ERROR = 500


class LeaseLost(Exception):
    """Another run holds the report now (this one's lease lapsed): stop without writing anything."""


def environment(url: str) -> str:
    """``production`` for NCMEC's production host, else ``test`` (NCMEC's test environment or a stand-in)."""
    return "production" if httpx.URL(url).host == PRODUCTION_HOST else "test"


def backoff(settings: Settings, attempts: int) -> dt.timedelta:
    return retry_delay(attempts, settings.cybertip_backoff_seconds, settings.cybertip_backoff_max_seconds)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Filer:
    """Files reports with the CyberTipline. ``hook(point)`` is called between steps (tests make a run die
    there); ``client_factory`` makes the API client (default: from settings)."""

    def __init__(
        self,
        db: Database,
        audit: AuditService,
        evidence,
        settings: Settings,
        *,
        client_factory: Callable[[], CyberTiplineClient] | None = None,
        hook: Callable[[str], None] | None = None,
    ):
        self.db, self.audit, self.evidence, self.settings = db, audit, evidence, settings
        self.client_factory = client_factory or (lambda: CyberTiplineClient.from_settings(self.settings))
        self.hook = hook or (lambda point: None)

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.cybertip_timeout * 3 + LEASE_GRACE)

    def schema(self) -> Schema:
        return Schema.load(self.settings.cybertip_schema)

    def file(self, report_id: int) -> str | None:
        """One filing run of a submitted report; its status afterwards, or None when another run holds it."""
        run = self._acquire(report_id, ("submitted",))
        return run.file() if run else None

    def retract(self, report_id: int, actor: str, reason: str) -> None:
        """Withdraw a submitted or failed report: ``/retract`` at NCMEC when it was opened there (``5001`` is
        fine: it is gone already), then ``retracted``. A report being filed right now refuses (``report.busy``);
        one NCMEC has finished refuses (``report.finished``) and is recorded as finished."""
        run = self._acquire(report_id, ("submitted", "failed"))
        if run is None:
            raise Conflict("report.busy", f"Report {report_id} is being filed right now; try again in a minute.")
        run.retract(actor, reason)

    def _acquire(self, report_id: int, statuses: tuple[str, ...]) -> _Run | None:
        token, now = uuid.uuid4().hex, utcnow()
        with self.db.session() as s:
            won = s.execute(
                update(Report)
                .where(
                    Report.id == report_id,
                    Report.status.in_(statuses),
                    or_(Report.lease_until.is_(None), Report.lease_until < now),
                )
                .values(lease_owner=token, lease_until=now + self.lease)
                .execution_options(synchronize_session=False)
            ).rowcount
        return _Run(self, report_id, token) if won else None


class _Run:
    """One lease holder's run over one report."""

    def __init__(self, filer: Filer, report_id: int, token: str):
        self.filer, self.id, self.token = filer, report_id, token
        self.target = f"report:{report_id}"
        self.client: CyberTiplineClient | None = None

    # ---------------------------------------------------------------- writes

    def write(
        self,
        values: dict,
        files: dict[int, dict] | None = None,
        *,
        reset_files: bool = False,
        audit: tuple[str, str, dict] | None = None,
        release: bool = False,
    ) -> None:
        """Commit ``values`` on the report (and file rows) if this run still holds the lease, renewing it (or
        releasing it); an audit record (actor, action, detail) goes in the same transaction."""
        f, now = self.filer, utcnow()
        lease = {"lease_owner": None, "lease_until": None} if release else {"lease_until": now + f.lease}
        with f.db.session() as s:
            won = s.execute(
                update(Report)
                .where(Report.id == self.id, Report.lease_owner == self.token)
                .values(**values, **lease, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not won:
                raise LeaseLost(self.id)
            if reset_files:
                s.execute(update(ReportFile).where(ReportFile.report_id == self.id).values(**FILE_RESET))
            for file_id, file_values in (files or {}).items():
                s.execute(
                    update(ReportFile)
                    .where(ReportFile.id == file_id, ReportFile.report_id == self.id)
                    .values(**file_values)
                )
            if audit:
                actor, action, detail = audit
                f.audit.record(s, actor, action, self.target, detail)

    def load(self) -> tuple[drafts.Snapshot, bytes]:
        """The report as it stands, and its ``<report>`` document (built and validated now)."""
        with self.filer.db.session() as s:
            report = s.scalar(select(Report).where(Report.id == self.id, Report.lease_owner == self.token))
            if report is None:
                raise LeaseLost(self.id)
            snap = drafts.snapshot(s, report)
        return snap, report_xml(drafts.cybertip_report(snap, self.filer.settings), self.filer.schema())

    # ---------------------------------------------------------------- filing

    def file(self) -> str | None:
        try:
            with self.filer.client_factory() as client:
                self.client = client
                try:
                    return self.steps()
                except CyberTiplineError as e:
                    if e.response_code != NO_SUCH_REPORT:
                        raise
                    self.restart("NCMEC no longer has the report (deleted unfinished, or removed)")
                    return self.steps()  # a second 5001 right after a new /submit is an error
        except LeaseLost:
            log.warning("report %s: lease lost to another run; stopping", self.id)
            return None
        except CyberTiplineError as e:
            return self.failed_attempt(e.code, e.message, e.response_code, e.retryable or e.ambiguous)
        except SafeholdError as e:  # our document or configuration: retrying does not help
            return self.failed_attempt(e.code, e.message, None, e.status >= 500)
        except Exception as e:  # a bug or the database away: try again later, never lose the report
            log.exception("report %s: filing run failed", self.id)
            return self.failed_attempt("report.filing_error", f"{type(e).__name__}: {e}", None, True)

    def steps(self) -> str:
        f, hook = self.filer, self.filer.hook
        hook("leased")
        snap, xml = self.load()
        report, digest = snap.report, sha256(xml)
        if report.external_id:
            unsure = [x.id for x in snap.files if x.upload_started_at and not x.file_id]
            if unsure or report.document_sha256 != digest:
                why = "an upload's outcome is unknown" if unsure else "the report changed since it was submitted"
                self.retract_remote(report.external_id)
                self.restart(f"{why}: retracted at NCMEC, starting again")
                snap, xml = self.load()
                report = snap.report
        external_id = report.external_id
        if external_id is None:
            external_id = self.client.submit(xml)
            hook("submit:sent")
            env = environment(f.settings.cybertip_url)
            self.write({"external_id": external_id, "step": "opened", "document_sha256": digest, "environment": env})
            hook("submit:saved")
        for rf in snap.files:
            if not rf.file_id:
                self.upload(rf, external_id)
        for rf in snap.files:
            if not rf.described_at:
                self.describe(snap, rf, external_id)
        if report.step != "finishing":
            self.preserve(snap, xml, digest)
            self.write({"step": "finishing"})
            hook("document:saved")
        try:
            self.client.finish(external_id)
        except CyberTiplineError as e:
            if e.response_code != ALREADY_FINISHED:  # 5102: a /finish whose answer was lost went through
                raise
        hook("finish:sent")
        detail = {
            "external_id": external_id,
            "environment": environment(f.settings.cybertip_url),
            "files": [rf.file_id for rf in snap.files],
            "document_sha256": digest,
        }
        done = {"status": "finished", "step": "finished", "finished_at": utcnow(), "next_attempt_at": None}
        self.write({**done, "last_code": 0, "last_error": None}, audit=(SYSTEM, "report.filed", detail), release=True)
        return "finished"

    def upload(self, rf: ReportFile, external_id: str) -> None:
        hook = self.filer.hook
        if rf.evidence_id is None:
            raise SafeholdError("report.no_evidence", f"File {rf.id} has no preserved evidence to upload.")
        self.write({}, {rf.id: {"upload_started_at": utcnow()}})
        hook("upload:started")
        _, data = self.filer.evidence.read(rf.evidence_id, SYSTEM, f"CyberTipline upload, report {self.id}")
        up = self.client.upload(external_id, rf.filename or f"file-{rf.id}", data)
        hook("upload:sent")
        if up.md5 and up.md5.lower() != rf.md5.lower():  # damaged on the way: the next run starts again
            raise SafeholdError("report.upload_damaged", f"NCMEC received file {rf.id} damaged.", status=502)
        self.write({}, {rf.id: {"file_id": up.file_id, "uploaded_at": utcnow()}})
        rf.file_id = up.file_id
        hook("upload:saved")

    def describe(self, snap: drafts.Snapshot, rf: ReportFile, external_id: str) -> None:
        """Send the file's details. Its viewed flags are frozen (written) first, so a repeat sends the same."""
        hook = self.filer.hook
        if rf.viewed_by_esp is None:
            view = snap.views[rf.sha256]
            self.write({}, {rf.id: view})
            rf.viewed_by_esp, rf.exif_viewed_by_esp, rf.viewed = (
                view["viewed_by_esp"],
                view["exif_viewed_by_esp"],
                view["viewed"],
            )
        details = drafts.file_details(snap, rf, external_id, rf.file_id)
        self.client.fileinfo(file_details_xml(details, self.filer.schema()))
        hook("fileinfo:sent")
        self.write({}, {rf.id: {"described_at": utcnow()}})
        hook("fileinfo:saved")

    def preserve(self, snap: drafts.Snapshot, xml: bytes, digest: str) -> None:
        """Keep the document as filed in the evidence store (what the REPORT Act's one-year preservation
        covers). Idempotent; a report re-filed with other content keeps each version under its own key."""
        report = snap.report
        key = f"report:{self.id}:document"
        case_id = snap.cases[0].id if snap.cases else None
        for source_key in (key, f"{key}:{digest[:16]}"):
            kept = self.filer.evidence.preserve_bytes(
                case_id,
                source_key,
                xml,
                kind="document",
                actor=SYSTEM,
                filename=f"cybertipline-report-{self.id}.xml",
                media_type="application/xml",
                account_id=report.account_id,
                metadata={"report_id": self.id, "external_id": report.external_id},
            )
            if kept["sha256"] == digest:
                return

    def restart(self, reason: str) -> None:
        """Forget NCMEC's report (and every file's filing state): the next step is a new ``/submit``."""
        with self.filer.db.session() as s:
            old = s.scalar(select(Report.external_id).where(Report.id == self.id))
        detail = {"reason": reason, "external_id": old}
        self.write({"external_id": None, "step": "", "document_sha256": None}, reset_files=True,
                   audit=(SYSTEM, "report.restart", detail))  # fmt: skip
        log.warning("report %s: %s", self.id, reason)

    def retract_remote(self, external_id: str) -> None:
        try:
            self.client.retract(external_id)
        except CyberTiplineError as e:
            if e.response_code != NO_SUCH_REPORT:
                raise

    def failed_attempt(self, code: str, message: str, response_code: int | None, retryable: bool) -> str | None:
        """Count the attempt: schedule the next with back-off, or fail the report (not retryable, or the last
        attempt), recording the code and message."""
        settings = self.filer.settings
        with self.filer.db.session() as s:
            attempts = (s.scalar(select(Report.attempts).where(Report.id == self.id)) or 0) + 1
        error = f"{code}: {message}"[:MAX_ERROR]
        values = {"attempts": attempts, "last_code": response_code, "last_error": error}
        try:
            if retryable and attempts < settings.cybertip_max_attempts:
                delay = backoff(settings, attempts)
                self.write({**values, "next_attempt_at": utcnow() + delay}, release=True)
                log.warning("report %s: attempt %s failed (%s); next in %.0fs", self.id, attempts, error, delay.seconds)
                return "submitted"
            detail = {"code": code, "message": message[:MAX_ERROR], "response_code": response_code,
                      "attempts": attempts}  # fmt: skip
            self.write({**values, "status": "failed", "next_attempt_at": None},
                       audit=(SYSTEM, "report.failed", detail), release=True)  # fmt: skip
            log.error("report %s failed: %s", self.id, error)
            return "failed"
        except LeaseLost:
            return None

    # --------------------------------------------------------------- retract

    def retract(self, actor: str, reason: str) -> None:
        with self.filer.db.session() as s:
            external_id = s.scalar(select(Report.external_id).where(Report.id == self.id))
        try:
            finished = external_id is not None and self.withdraw(external_id)
        except BaseException:
            self.write({}, release=True)
            raise
        if finished:
            detail = {"external_id": external_id, "note": "NCMEC has it as finished (answer to /retract)"}
            self.write({"status": "finished", "step": "finished", "finished_at": utcnow()},
                       audit=(SYSTEM, "report.filed", detail), release=True)  # fmt: skip
            raise Conflict("report.finished", f"NCMEC has report {self.id} as finished; it cannot be retracted.")
        detail = {"reason": reason, "external_id": external_id, "retracted_at_ncmec": external_id is not None}
        done = {"status": "retracted", "retracted_by": actor, "retracted_at": utcnow(), "next_attempt_at": None}
        self.write(done, audit=(actor, "report.retract", detail), release=True)

    def withdraw(self, external_id: str) -> bool:
        """``/retract`` at NCMEC; True when NCMEC answers that the report is finished (``5102``)."""
        with self.filer.client_factory() as client:
            try:
                client.retract(external_id)
            except CyberTiplineError as e:
                if e.response_code == ALREADY_FINISHED:
                    return True
                if e.response_code != NO_SUCH_REPORT:
                    raise
        return False
