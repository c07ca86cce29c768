"""What evidence needs to know of reports, told by reporting through :class:`Reports`.

Reporting depends on evidence (it preserves and reads what it files), not the reverse, so evidence never reads
reporting's tables: retention asks which reports need which items (:class:`Claim`), and a report's export package
asks what the report is and holds (:class:`ReportPackage`). ``safehold.reporting.evidence.EvidenceFacts`` answers,
and the wiring (``safehold.services``) passes it to the evidence service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Select
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Claim:
    """A report that needs an item: while ``unfinished`` it keeps the item; once finished, its ``finished_at``
    is the base the item's retention runs from."""

    report_id: int
    unfinished: bool
    finished_at: dt.datetime | None = None


@dataclass(frozen=True)
class ReportPackage:
    """What a report's export package is made of: the cases it bundles, the evidence of the files it carries,
    the SHA-256 of its document as filed, and its record (``report.json``)."""

    report_id: int
    case_ids: list[int]
    evidence_ids: list[int]
    document_sha256: str | None
    record: dict[str, Any]


class Reports(Protocol):
    """Reporting's answers to evidence, each read in ``s``, the caller's transaction."""

    def claims(
        self, s: Session, case_ids: Collection[int], evidence_ids: Collection[int]
    ) -> tuple[Mapping[int, list[Claim]], Mapping[int, list[Claim]]]:
        """The claims on each case (the reports bundling it) and on each item (the reports carrying it);
        retracted reports claim nothing."""
        ...

    def finished_before(self, cutoff: dt.datetime) -> tuple[Select, Select]:
        """Two selects of one column: the case ids and the evidence ids that a report finished before ``cutoff``
        needs."""
        ...

    def package(self, s: Session, report_id: int) -> ReportPackage:
        """The report's package contents; ``report.not_found`` (404) when there is no such report."""
        ...
