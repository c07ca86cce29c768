"""What reporting tells evidence about reports (:class:`safehold.evidence.reports.Reports`): which reports need
which preserved items, for retention, and what a report's export package holds.

A report needs the evidence of the cases it bundles (``ReportCase``) and of the files it carries
(``ReportFile.evidence_id``). While it is unfinished (``draft``, ``submitted``, ``failed``: a failed report is fixed
and submitted again) it keeps that evidence; once ``finished``, the evidence's retention runs from ``finished_at``.
A retracted report needs nothing. Reporting owns these tables, so this is where they are read on evidence's behalf.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from safehold.errors import NotFound
from safehold.evidence.reports import Claim, ReportPackage
from safehold.store.models import Report, ReportCase, ReportFile

#: Report statuses that still need their evidence.
UNFINISHED = ("draft", "submitted", "failed")
FINISHED = "finished"


class EvidenceFacts:
    """Reporting's answers to the evidence service; passed to it by the wiring (``safehold.services``)."""

    def claims(
        self, s: Session, case_ids: Collection[int], evidence_ids: Collection[int]
    ) -> tuple[dict[int, list[Claim]], dict[int, list[Claim]]]:
        by_case: dict[int, list[Claim]] = defaultdict(list)
        if case_ids:
            rows = s.execute(
                select(ReportCase.case_id, Report.id, Report.status, Report.finished_at)
                .join(Report, Report.id == ReportCase.report_id)
                .where(ReportCase.case_id.in_(case_ids))
            )
            for case_id, report_id, status, finished_at in rows:
                if (claim := _claim(report_id, status, finished_at)) is not None:
                    by_case[case_id].append(claim)
        by_item: dict[int, list[Claim]] = defaultdict(list)
        if evidence_ids:
            rows = s.execute(
                select(ReportFile.evidence_id, Report.id, Report.status, Report.finished_at)
                .join(Report, Report.id == ReportFile.report_id)
                .where(ReportFile.evidence_id.in_(evidence_ids))
            )
            for evidence_id, report_id, status, finished_at in rows:
                if (claim := _claim(report_id, status, finished_at)) is not None:
                    by_item[evidence_id].append(claim)
        return by_case, by_item

    def finished_before(self, cutoff: dt.datetime) -> tuple[Select, Select]:
        finished = (Report.status == FINISHED, Report.finished_at < cutoff)
        via_case = select(ReportCase.case_id).join(Report, Report.id == ReportCase.report_id).where(*finished)
        via_item = select(ReportFile.evidence_id).join(Report, Report.id == ReportFile.report_id).where(*finished)
        return via_case, via_item

    def package(self, s: Session, report_id: int) -> ReportPackage:
        report = s.get(Report, report_id)
        if report is None:
            raise NotFound("report.not_found", f"No report with id {report_id}.")
        files = list(s.scalars(select(ReportFile).where(ReportFile.report_id == report_id).order_by(ReportFile.id)))
        return ReportPackage(
            report_id=report_id,
            case_ids=list(s.scalars(select(ReportCase.case_id).where(ReportCase.report_id == report_id))),
            evidence_ids=[f.evidence_id for f in files if f.evidence_id is not None],
            document_sha256=report.document_sha256,
            record={**report.record(), "files": [_file_record(f) for f in files]},
        )


def _file_record(f: ReportFile) -> dict:
    """A file as the export records it: identity, upload progress and what the authority viewed."""
    viewed = {k: getattr(f, k) for k in ("viewed_by_esp", "exif_viewed_by_esp")}
    return {**f.record(), **viewed, "viewed": f.viewed or {}}


def _claim(report_id: int, status: str, finished_at: dt.datetime | None) -> Claim | None:
    if status in UNFINISHED:
        return Claim(report_id, unfinished=True)
    if status == FINISHED:
        return Claim(report_id, unfinished=False, finished_at=finished_at)
    return None
