"""What a report says: its editable fields, drawn from the confirmed cases it bundles, and the CyberTipline
documents built from them.

A report's ``fields`` hold what a reviewer may change (incident type, annotations, escalation, free text, the
reported user as shown); everything else is read from the cases at build time, so a document is a function of
the database and never a stale copy. Whether staff viewed a file (``fileViewedByEsp``) or its EXIF data
(``exifViewedByEsp``) is read from the audit log's ``media.reveal`` / ``media.exif_view`` records of every case
item with the file's SHA-256, never from a default: law enforcement relies on that answer when deciding whether
it needs a warrant to open the file (United States v. Wilson, 9th Cir. 2021).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import String, cast, literal, select
from sqlalchemy.orm import Session

from safehold.audit.service import format_at
from safehold.cases.taxonomy import CLASSIFICATIONS
from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.reporting.cybertipline.builder import (
    Account,
    ChatIm,
    CyberTipReport,
    FileDetails,
    Incident,
    IpEvent,
    Person,
    Reporter,
    WebPage,
)
from safehold.reporting.cybertipline.schema import Schema
from safehold.reporting.cybertipline.vocabulary import INCIDENT_CSAM, INCIDENT_ENTICEMENT
from safehold.review.wellness import REVEAL
from safehold.store.models import AuditRecord, Case, CaseItem, Report, ReportCase, ReportFile, as_utc

EXIF_VIEW = "media.exif_view"
#: The reported user's fields a reviewer can set (as shown on the report; the case keeps what the platform sent).
USER_FIELDS = ("screen_name", "display_name", "profile_url", "email", "esp_identifier")
#: A report's editable fields, with their empty values.
FIELDS = {
    "incident_type": None,
    "annotations": [],
    "escalate_to_high_priority": None,
    "incident_description": None,
    "additional_info": None,
    "reported_user": {},
}
FILE_FIELDS = ("annotations", "relevance", "publicly_available")
MAX_TEXT = 10_000
#: Platform IP event names (lower case) → the schema's ``ipCaptureType``; anything else is ``Other``.
IP_EVENTS = {
    "login": "Login",
    "sign_in": "Login",
    "signin": "Login",
    "registration": "Registration",
    "register": "Registration",
    "signup": "Registration",
    "sign_up": "Registration",
    "purchase": "Purchase",
    "upload": "Upload",
    "unknown": "Unknown",
}


# ------------------------------------------------------------------------ incidents and defaults


def incident_key(case: Case) -> str:
    """One report per incident: an account's confirmed cases go together; without an account, one content item."""
    if case.account_id:
        return f"account:{case.account_id}"
    if case.content_id:
        return f"content:{case.content_id}"
    return f"case:{case.id}"


def defaults(case: Case) -> tuple[str, list[str]]:
    """The incident type and report annotations a confirmed finding suggests (reviewers can change both):
    CSAM is "Child Pornography"; grooming and sextortion are online enticement (sextortion annotated as such);
    solicitation of CSAM is "Child Pornography" annotated ``csamSolicitation``."""
    if case.decision == "cse":
        if case.classification == "solicitation":
            return INCIDENT_CSAM, ["csamSolicitation"]
        return INCIDENT_ENTICEMENT, ["sextortion"] if case.classification == "sextortion" else []
    return INCIDENT_CSAM, []


def initial_fields(case: Case) -> dict:
    incident_type, annotations = defaults(case)
    account = (case.metadata_ or {}).get("account")
    account = account if isinstance(account, dict) else {}
    user = {k: str(account[k]) for k in USER_FIELDS if account.get(k) not in (None, "")}
    if case.account_id:
        user.setdefault("esp_identifier", case.account_id)
    return {**FIELDS, "incident_type": incident_type, "annotations": annotations, "reported_user": user}


def join_fields(fields: dict, case: Case) -> dict:
    """A draft's fields after another case of the incident joins: its suggested annotations are added; the
    incident type stays (the reviewer's, or the first case's)."""
    _, annotations = defaults(case)
    merged = list(dict.fromkeys([*(fields.get("annotations") or []), *annotations]))
    return {**fields, "annotations": merged}


# ----------------------------------------------------------------------------------- validation


def check_changes(changes: dict, schema: Schema, file_ids: set[int]) -> tuple[dict, dict[int, dict]]:
    """Validate an update: (report field changes, {report_file_id: file field changes}). Unknown keys and values
    outside the loaded schema's vocabulary raise ``report.invalid_field``."""
    if not isinstance(changes, dict):
        raise _invalid("changes", "The changes must be an object.")
    if unknown := sorted(set(changes) - set(FIELDS) - {"files"}):
        raise _invalid(unknown[0], f"Unknown report field(s): {', '.join(unknown)}.")
    out: dict = {}
    for key, value in changes.items():
        if key == "incident_type":
            out[key] = _choice(key, value, schema.enumeration("incidentType"))
        elif key == "annotations":
            out[key] = _flags(key, value, schema.flags("reportAnnotations"))
        elif key in ("escalate_to_high_priority", "incident_description", "additional_info"):
            out[key] = _text(key, value)
        elif key == "reported_user":
            if not isinstance(value, dict) or set(value) - set(USER_FIELDS):
                raise _invalid(key, f"reported_user takes {', '.join(USER_FIELDS)}.")
            out[key] = {k: v for k, v in ((k, _text(f"{key}.{k}", v)) for k, v in value.items()) if v is not None}
    files: dict[int, dict] = {}
    for raw_id, file_changes in (changes.get("files") or {}).items():
        try:
            file_id = int(raw_id)
        except (TypeError, ValueError):
            raise _invalid("files", f"{raw_id!r} is not a report file id.") from None
        if file_id not in file_ids:
            raise _invalid("files", f"File {file_id} is not part of this report.")
        if not isinstance(file_changes, dict) or set(file_changes) - set(FILE_FIELDS):
            raise _invalid("files", f"A file takes {', '.join(FILE_FIELDS)}.")
        checked: dict = {}
        for key, value in file_changes.items():
            if key == "annotations":
                checked[key] = _flags(f"files.{key}", value, schema.flags("fileAnnotations"))
            elif key == "relevance":
                checked[key] = value if value is None else _choice(key, value, schema.enumeration("fileRelevance"))
            elif value is not None and not isinstance(value, bool):
                raise _invalid(f"files.{key}", "publicly_available is true, false or null.")
            else:
                checked[key] = value
        files[file_id] = checked
    return out, files


def _invalid(name: str, message: str) -> SafeholdError:
    return SafeholdError("report.invalid_field", message, detail={"field": name})


def _choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _invalid(name, f"{name} must be one of: {'; '.join(allowed)}.")
    return value


def _flags(name: str, value, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(name, f"{name} must be a list of names.")
    if bad := [v for v in value if v not in allowed]:
        raise _invalid(name, f"Unknown {name} {bad}; the schema allows {', '.join(allowed)}.")
    return list(dict.fromkeys(value))


def _text(name: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, f"{name} must be text.")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise _invalid(name, f"{name} is at most {MAX_TEXT} characters.")
    return value or None


# ------------------------------------------------------------------------------ what is on file


@dataclass
class Snapshot:
    """A report and what it is built from, read in one transaction."""

    report: Report
    cases: list[Case]
    items: dict[int, CaseItem]
    files: list[ReportFile]
    views: dict[str, dict] = field(default_factory=dict)  # sha256 -> viewed(); for files not yet described


def snapshot(s: Session, report: Report) -> Snapshot:
    case_ids = select(ReportCase.case_id).where(ReportCase.report_id == report.id)
    cases = list(s.scalars(select(Case).where(Case.id.in_(case_ids)).order_by(Case.id)))
    items = {i.id: i for i in s.scalars(select(CaseItem).where(CaseItem.case_id.in_(case_ids)).order_by(CaseItem.id))}
    files = list(s.scalars(select(ReportFile).where(ReportFile.report_id == report.id).order_by(ReportFile.id)))
    views = {f.sha256: viewed(s, f.sha256) for f in files if f.viewed_by_esp is None}
    return Snapshot(report, cases, items, files, views)


def viewed(s: Session, sha256: str) -> dict:
    """Whether staff saw the file (``media.reveal``) or its EXIF data (``media.exif_view``), from the audit log
    records of every case item with this SHA-256; who and when, for the record. No record means no."""
    targets = select(literal("case_item:", String) + cast(CaseItem.id, String)).where(CaseItem.sha256 == sha256)
    q = (
        select(AuditRecord)
        .where(AuditRecord.target.in_(targets), AuditRecord.action.in_((REVEAL, EXIF_VIEW)))
        .order_by(AuditRecord.seq)
    )
    records = {REVEAL: [], EXIF_VIEW: []}
    for r in s.scalars(q):
        records[r.action].append({"actor": r.actor, "at": format_at(r.at), "seq": r.seq, "target": r.target})
    return {
        "viewed_by_esp": bool(records[REVEAL]),
        "exif_viewed_by_esp": bool(records[EXIF_VIEW]),
        "viewed": {"reveals": records[REVEAL], "exif_views": records[EXIF_VIEW]},
    }


def file_view(snap: Snapshot, f: ReportFile) -> dict:
    """The file's viewed flags as filed (frozen when first described) or as they would be filed now."""
    if f.viewed_by_esp is not None:
        return {"viewed_by_esp": f.viewed_by_esp, "exif_viewed_by_esp": f.exif_viewed_by_esp, "viewed": f.viewed}
    return snap.views[f.sha256]


def file_classification(snap: Snapshot, f: ReportFile) -> str | None:
    """The industry classification (A1..B2) the reviewers gave the file's case; None for other findings."""
    item = snap.items.get(f.case_item_id) if f.case_item_id else None
    case = next((c for c in snap.cases if item is not None and c.id == item.case_id), None)
    return case.classification if case is not None and case.classification in CLASSIFICATIONS else None


def incident_at(snap: Snapshot) -> dt.datetime:
    """When it happened: the earliest upload time the platform gave, else when the first case opened."""
    uploads = [as_utc(i.uploaded_at) for i in snap.items.values() if i.uploaded_at is not None]
    return min(uploads) if uploads else min(as_utc(c.opened_at) for c in snap.cases)


def ip_events(snap: Snapshot) -> list[IpEvent]:
    """The cases' ``metadata["ip_events"]`` (``{"ip", "type", "at"}``), once each, oldest first."""
    seen: dict[tuple, IpEvent] = {}
    for case in snap.cases:
        for e in (case.metadata_ or {}).get("ip_events") or []:
            if not isinstance(e, dict) or not e.get("ip"):
                continue
            event = IP_EVENTS.get(str(e.get("type") or "").lower(), "Other")
            at = _when(e.get("at"))
            seen.setdefault((str(e["ip"]), event, at), IpEvent(ip=str(e["ip"]), event=event, at=at))
    return sorted(seen.values(), key=lambda e: (e.at is None, e.at or dt.datetime.min.replace(tzinfo=dt.UTC)))


def _when(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return as_utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        try:
            return as_utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def urls(snap: Snapshot) -> list[str]:
    return list(dict.fromkeys(i.url for i in snap.items.values() if i.url))


# ---------------------------------------------------------------------------- CyberTipline documents


def reporter(settings: Settings) -> Reporter:
    person = Person(
        first_name=settings.reporter_first_name,
        last_name=settings.reporter_last_name,
        emails=[settings.reporter_email] if settings.reporter_email else [],
        phones=[settings.reporter_phone] if settings.reporter_phone else [],
    )
    return Reporter(person=person, terms_of_service=settings.terms_of_service_url, legal_url=settings.legal_url)


def reported_user(snap: Snapshot, settings: Settings) -> Account | None:
    user = snap.report.fields.get("reported_user") or {}
    events = ip_events(snap)
    if not user and not events:
        return None
    return Account(
        esp_identifier=user.get("esp_identifier"),
        esp_service=settings.platform_name,
        screen_name=user.get("screen_name"),
        display_names=[user["display_name"]] if user.get("display_name") else [],
        profile_urls=[user["profile_url"]] if user.get("profile_url") else [],
        person=Person(emails=[user["email"]]) if user.get("email") else None,
        ip_events=events,
    )


def cybertip_report(snap: Snapshot, settings: Settings) -> CyberTipReport:
    """The ``<report>`` of a snapshot: incident from the fields, web pages from the items' URLs, chat text from
    the text items, the reported user with the cases' IP events, the reporter from settings."""
    fields = snap.report.fields or {}
    internet: list[WebPage | ChatIm] = []
    if found := urls(snap):
        internet.append(WebPage(urls=found))
    for item in snap.items.values():
        if item.text and item.media_key is None:
            internet.append(ChatIm(client=settings.platform_name, content=item.text))
    user = reported_user(snap, settings)
    incident = Incident(
        incident_type=fields.get("incident_type") or INCIDENT_CSAM,
        at=incident_at(snap),
        platform=settings.platform_name,
        escalate_to_high_priority=fields.get("escalate_to_high_priority"),
        annotations=list(fields.get("annotations") or []),
        at_description=fields.get("incident_description"),
    )
    return CyberTipReport(
        incident=incident,
        reporter=reporter(settings),
        internet=internet,
        reported=[user] if user else [],
        additional_info=fields.get("additional_info"),
    )


def file_details(snap: Snapshot, f: ReportFile, report_id: str, file_id: str) -> FileDetails:
    """The ``<fileDetails>`` of one uploaded file (``report_id``/``file_id``: NCMEC's)."""
    item = snap.items.get(f.case_item_id) if f.case_item_id else None
    view = file_view(snap, f)
    fields = f.fields or {}
    return FileDetails(
        report_id=report_id,
        file_id=file_id,
        file_name=f.filename,
        original_file_name=item.filename if item else None,
        uploaded_at=as_utc(item.uploaded_at) if item else None,
        location=item.url if item else None,
        viewed_by_esp=view["viewed_by_esp"],
        exif_viewed_by_esp=view["exif_viewed_by_esp"],
        publicly_available=fields.get("publicly_available"),
        relevance=fields.get("relevance") or "Reported",
        annotations=list(fields.get("annotations") or []),
        classification=file_classification(snap, f),
        hashes=[("MD5", f.md5), ("SHA256", f.sha256)],
    )


__all__ = [
    "FIELDS",
    "Snapshot",
    "check_changes",
    "cybertip_report",
    "file_details",
    "incident_key",
    "initial_fields",
    "join_fields",
    "snapshot",
    "viewed",
]
