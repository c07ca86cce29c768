"""The authorities a report can go to, behind one small interface.

NCMEC's CyberTipline is filed through its API (:mod:`safehold.reporting.filing`). The others — the UK's National
Crime Agency, Canada's Cybertip.ca and Australia's eSafety Commissioner — take reports through their own forms
and channels, so Safehold prepares a structured package (this record as JSON, the files, a manifest of hashes,
built by :meth:`EvidenceService.export`) that an operator submits by hand, then records the reference the
authority gave (``ReportService.mark_filed``). A new authority is one more entry in :data:`AUTHORITIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from safehold.errors import SafeholdError

#: The package's format name: bumped when its shape changes, so a reader can tell.
FORMAT = "safehold.authority-report/1"
#: The report's keys a package carries (the rest is filing state, not what happened).
REPORT_KEYS = ("id", "incident_key", "account_id", "status", "external_id", "created_at", "submitted_at",
               "incident_at", "ip_events", "urls")  # fmt: skip
FILE_KEYS = ("sha256", "md5", "filename", "classification", "viewed_by_esp", "exif_viewed_by_esp", "viewed")


class Authority(Protocol):
    name: str
    title: str
    #: True: filed through an API by Safehold; False: an operator files the exported package by hand.
    files_by_api: bool

    def package(self, report: dict) -> dict:
        """The report (``ReportService.get``) as a JSON-able record for this authority."""
        ...


@dataclass(frozen=True)
class Hotline:
    """An authority or hotline that takes reports of child sexual exploitation."""

    name: str
    title: str
    jurisdiction: str
    url: str
    files_by_api: bool = False
    #: Where its reporting duty or channel comes from, for the operator reading the package.
    basis: str = ""

    def package(self, report: dict) -> dict:
        """Authority-neutral: what happened (incident, reported user, IP events, URLs), the cases' findings and
        every file with its hashes and whether staff viewed it. Files travel in the export as
        ``files/<sha256>-<name>``; their hashes here let the recipient check them."""
        fields = report.get("fields") or {}
        return {
            "format": FORMAT,
            "authority": {
                "name": self.name,
                "title": self.title,
                "jurisdiction": self.jurisdiction,
                "url": self.url,
                "basis": self.basis,
            },  # fmt: skip
            "report": {k: report.get(k) for k in REPORT_KEYS},
            "incident": {
                "type": fields.get("incident_type"),
                "annotations": fields.get("annotations") or [],
                "escalate_to_high_priority": fields.get("escalate_to_high_priority"),
                "description": fields.get("incident_description"),
                "additional_info": fields.get("additional_info"),
            },
            "reported_user": fields.get("reported_user") or {},
            "cases": report.get("cases") or [],
            "files": [
                {**{k: f.get(k) for k in FILE_KEYS}, **(f.get("fields") or {})} for f in report.get("files") or []
            ],
        }


AUTHORITIES: dict[str, Hotline] = {
    h.name: h
    for h in (
        Hotline(
            "ncmec",
            "NCMEC CyberTipline",
            "US",
            "https://report.cybertip.org/",
            files_by_api=True,
            basis="18 U.S.C. 2258A: US providers report apparent child sexual abuse material and enticement.",
        ),
        Hotline(
            "nca",
            "UK National Crime Agency",
            "UK",
            "https://www.nationalcrimeagency.gov.uk/",
            basis="Online Safety Act 2023, s. 66: UK services report detected CSEA content to the NCA.",
        ),
        Hotline(
            "cybertip_ca",
            "Cybertip.ca (Canadian Centre for Child Protection)",
            "CA",
            "https://www.cybertip.ca/",
            basis="S.C. 2011, c. 4 (mandatory reporting of Internet child pornography): the designated organisation.",
        ),
        Hotline(
            "esafety",
            "eSafety Commissioner (Australia)",
            "AU",
            "https://www.esafety.gov.au/report",
            basis="Online Safety Act 2021 (Cth): reports of illegal and restricted online content.",
        ),
    )
}


def find(name: str) -> Hotline:
    """The authority called ``name``; ``report.invalid_authority`` if there is none."""
    found = AUTHORITIES.get(name)
    if found is None:
        raise SafeholdError("report.invalid_authority", f"Unknown authority {name!r}; one of {', '.join(AUTHORITIES)}.")
    return found
