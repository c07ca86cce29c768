"""Build CyberTipline ``<report>`` and ``<fileDetails>`` documents from plain dataclasses.

The API rejects a document whose elements are out of the schema's order (4100), so each element is written in
the order the schema's ``xs:sequence`` requires. Enumerated values are checked against the *loaded* schema first,
so a wrong value is a clear ``cybertip.invalid_value`` naming the field rather than a schema error; then the whole
document is validated, so nothing invalid ever leaves for NCMEC.

Rules the API cares about:

* optional values that are ``None`` (or empty) are left out. A boolean ``False`` is written as ``false``: whether a
  file was viewed must be stated from the audit log, never defaulted (``FileDetails.viewed_by_esp``);
* annotations are flags (``<sextortion>true</sextortion>``), written only for those that apply;
* times are ``xs:dateTime`` in UTC with a ``Z`` (a naive datetime is taken as UTC);
* text is written as given, except characters XML cannot carry (control characters), which become U+FFFD.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field

from lxml import etree

from safehold.errors import SafeholdError
from safehold.reporting.cybertipline.schema import Schema
from safehold.reporting.cybertipline.vocabulary import DOCUMENTED_REPORT_ANNOTATIONS

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class IpEvent:
    """An ``ipCaptureEvent``: an address the user was seen at (``event``: ``IP_CAPTURE_EVENTS``)."""

    ip: str
    event: str | None = None
    at: dt.datetime | None = None
    possible_proxy: bool | None = None
    port: int | None = None


@dataclass
class Person:
    first_name: str | None = None
    last_name: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    age: int | None = None
    date_of_birth: dt.date | None = None


@dataclass
class Reporter:
    """The ``reporter``: who at the provider files (``reportingPerson``) and whom NCMEC may contact."""

    person: Person
    company_template: str | None = None
    terms_of_service: str | None = None
    legal_url: str | None = None
    contact: Person | None = None  # contactPerson (name, phones, emails), when not the reporting person


@dataclass
class Account:
    """A ``personOrUserReported``, ``intendedRecipient`` or ``victim`` (a victim needs ``person``)."""

    esp_identifier: str | None = None
    esp_service: str | None = None
    screen_name: str | None = None
    display_names: list[str] = field(default_factory=list)
    profile_urls: list[str] = field(default_factory=list)
    person: Person | None = None
    ip_events: list[IpEvent] = field(default_factory=list)
    disabled_temporarily: dt.datetime | None = None
    disabled_permanently: dt.datetime | None = None
    additional_info: str | None = None
    compromised: bool | None = None
    profile_bio: str | None = None


@dataclass
class Incident:
    incident_type: str
    at: dt.datetime
    platform: str | None = None
    escalate_to_high_priority: str | None = None  # free text: why NCMEC should prioritise (e.g. a child at risk)
    annotations: list[str] = field(default_factory=list)
    at_description: str | None = None


@dataclass
class WebPage:
    """``internetDetails/webPageIncident``."""

    urls: list[str] = field(default_factory=list)
    additional_info: str | None = None
    third_party_hosted: bool | None = None


@dataclass
class ChatIm:
    """``internetDetails/chatImIncident``."""

    client: str | None = None
    room: str | None = None
    content: str | None = None
    additional_info: str | None = None


@dataclass
class CyberTipReport:
    incident: Incident
    reporter: Reporter
    internet: list[WebPage | ChatIm] = field(default_factory=list)
    reported: list[Account] = field(default_factory=list)
    recipients: list[Account] = field(default_factory=list)
    victims: list[Account] = field(default_factory=list)
    additional_info: str | None = None


@dataclass
class FileDetails:
    """``fileDetails`` of one uploaded file (``report_id``/``file_id``: NCMEC's, from ``/submit`` and ``/upload``)."""

    report_id: str
    file_id: str
    file_name: str | None = None
    original_file_name: str | None = None
    uploaded_at: dt.datetime | None = None
    location: str | None = None
    viewed_by_esp: bool | None = None
    exif_viewed_by_esp: bool | None = None
    publicly_available: bool | None = None
    relevance: str | None = None
    annotations: list[str] = field(default_factory=list)
    classification: str | None = None
    hashes: list[tuple[str, str]] = field(default_factory=list)  # (hashType, value): ("MD5", …), ("PDQ", …)
    ip_event: IpEvent | None = None
    additional_info: list[str] = field(default_factory=list)
    exif: dict[str, str] = field(default_factory=dict)  # written as <details type="EXIF"> name/value pairs


def xml_datetime(at: dt.datetime) -> str:
    """``xs:dateTime`` in UTC to the second, e.g. ``2025-11-10T08:30:00Z`` (naive means UTC)."""
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def report_xml(report: CyberTipReport, schema: Schema | None = None) -> bytes:
    """The ``<report>`` document for ``/submit``: values checked, elements in schema order, validated."""
    w = _Writer(schema or Schema.load())
    root = etree.Element("report")
    w.incident(root, report.incident)
    for entry in report.internet:
        w.internet(root, entry)
    w.reporter(root, report.reporter)
    for role, accounts in (("personOrUserReported", report.reported), ("intendedRecipient", report.recipients)):
        for account in accounts:
            w.account(root, role, account)
    for n, account in enumerate(report.victims):
        if account.person is None:
            w.problem(f"victims[{n}]: a victim needs a person (the schema requires victimPerson)")
        else:
            w.account(root, "victim", account)
    _add(root, "additionalInfo", report.additional_info)
    return w.finish(root)


def file_details_xml(details: FileDetails, schema: Schema | None = None) -> bytes:
    """The ``<fileDetails>`` document for ``/fileinfo``: values checked, elements in schema order, validated."""
    w = _Writer(schema or Schema.load())
    d = details
    root = etree.Element("fileDetails")
    for tag, value in (
        ("reportId", d.report_id),
        ("fileId", d.file_id),
        ("fileName", d.file_name),
        ("originalFileName", d.original_file_name),
        ("uploadedToEspTimestamp", d.uploaded_at),
        ("locationOfFile", d.location),
        ("fileViewedByEsp", w.boolean("viewed_by_esp", d.viewed_by_esp)),
        ("exifViewedByEsp", w.boolean("exif_viewed_by_esp", d.exif_viewed_by_esp)),
        ("publiclyAvailable", w.boolean("publicly_available", d.publicly_available)),
        ("fileRelevance", w.choice("relevance", d.relevance, "fileRelevance")),
    ):
        _add(root, tag, value)
    w.flags(root, "fileAnnotations", "annotations", d.annotations)
    _add(root, "industryClassification", w.choice("classification", d.classification, "fileClassification"))
    for n, pair in enumerate(d.hashes):
        if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            w.problem(f"hashes[{n}]: expected a (hashType, value) pair of non-empty strings")
            continue
        _add(root, "originalFileHash", pair[1], hashType=pair[0])
    if d.ip_event is not None:
        w.ip_event(root, "ip_event", d.ip_event)
    if d.exif:
        node = etree.SubElement(root, "details", type="EXIF")
        for name, value in d.exif.items():
            pair = etree.SubElement(node, "nameValuePair")
            _add(pair, "name", str(name), keep_empty=True)
            _add(pair, "value", str(value), keep_empty=True)
    for info in d.additional_info:
        _add(root, "additionalInfo", info)
    return w.finish(root)


class _Writer:
    """Checks values against the loaded schema while a document is written; ``finish`` raises them together."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def finish(self, root) -> bytes:
        if self.problems:
            raise SafeholdError(
                "cybertip.invalid_value",
                "; ".join(self.problems),
                status=422,
                detail={"errors": list(self.problems), "schema": str(self.schema.path)},
            )
        xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        self.schema.validate(xml)
        return xml

    def choice(self, name: str, value: str | None, simple_type: str) -> str | None:
        if value is None:
            return None
        allowed = self.schema.enumeration(simple_type)
        if value not in allowed:
            self.problem(f"{name}: {value!r} is not one of {', '.join(allowed)}")
            return None
        return value

    def boolean(self, name: str, value) -> bool | None:
        if value is not None and not isinstance(value, bool):
            self.problem(f"{name}: expected true, false or nothing, not {value!r}")
            return None
        return value

    def flags(self, parent, complex_type: str, name: str, values: list[str]) -> None:
        """``<complex_type><flag>true</flag>…</complex_type>`` for the flags given, in schema order."""
        allowed = self.schema.flags(complex_type)
        for value in values:
            if value in allowed:
                continue
            if value in DOCUMENTED_REPORT_ANNOTATIONS and complex_type == "reportAnnotations":
                self.problem(
                    f"{name}: {value!r} is in NCMEC's documentation but not in the loaded CyberTipline schema "
                    f"({self.schema.path}); set SAFEHOLD_CYBERTIP_SCHEMA to a newer schema fetched from the API's /xsd"
                )
            else:
                self.problem(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        chosen = [flag for flag in allowed if flag in values]
        if chosen:
            node = etree.SubElement(parent, complex_type)
            for flag in chosen:
                _add(node, flag, True)

    def incident(self, root, i: Incident) -> None:
        node = etree.SubElement(root, "incidentSummary")
        _add(node, "incidentType", self.choice("incident_type", i.incident_type, "incidentType"), keep_empty=True)
        _add(node, "platform", i.platform)
        _add(node, "escalateToHighPriority", i.escalate_to_high_priority)
        self.flags(node, "reportAnnotations", "annotations", i.annotations)
        if not isinstance(i.at, dt.datetime):
            self.problem(f"incident.at: expected a date and time, not {i.at!r}")
        _add(node, "incidentDateTime", i.at, keep_empty=True)
        _add(node, "incidentDateTimeDescription", i.at_description)

    def internet(self, root, entry: WebPage | ChatIm) -> None:
        node = etree.SubElement(root, "internetDetails")
        if isinstance(entry, WebPage):
            page = etree.SubElement(node, "webPageIncident")
            if entry.third_party_hosted is not None:
                page.set(
                    "thirdPartyHostedContent", _lexical(self.boolean("third_party_hosted", entry.third_party_hosted))
                )
            for url in entry.urls:
                _add(page, "url", url)
            _add(page, "additionalInfo", entry.additional_info)
        elif isinstance(entry, ChatIm):
            chat = etree.SubElement(node, "chatImIncident")
            for tag, value in (
                ("chatClient", entry.client),
                ("chatRoomName", entry.room),
                ("content", entry.content),
                ("additionalInfo", entry.additional_info),
            ):
                _add(chat, tag, value)
        else:
            self.problem(f"internet: expected a WebPage or ChatIm, not {type(entry).__name__}")

    def reporter(self, root, r: Reporter) -> None:
        node = etree.SubElement(root, "reporter")
        self.person(node, "reportingPerson", r.person)
        if r.contact is not None:
            self.person(node, "contactPerson", r.contact, contact=True)
        _add(node, "companyTemplate", r.company_template)
        _add(node, "termsOfService", r.terms_of_service)
        _add(node, "legalURL", r.legal_url)

    def person(self, parent, tag: str, p: Person, *, contact: bool = False) -> None:
        node = etree.SubElement(parent, tag)
        _add(node, "firstName", p.first_name)
        _add(node, "lastName", p.last_name)
        for phone in p.phones:
            _add(node, "phone", phone)
        for email in p.emails:
            _add(node, "email", email)
        if contact:  # contactPerson has no age or date of birth
            return
        if p.age is not None and not (isinstance(p.age, int) and 0 <= p.age <= 150):
            self.problem(f"{tag}.age: {p.age!r} is not an age")
        else:
            _add(node, "age", p.age)
        _add(node, "dateOfBirth", p.date_of_birth)

    def account(self, root, role: str, a: Account) -> None:
        """One account; the elements used here come in the same relative order in all three roles."""
        node = etree.SubElement(root, role)
        if a.person is not None:
            self.person(node, f"{role}Person", a.person)
        _add(node, "espIdentifier", a.esp_identifier)
        _add(node, "espService", a.esp_service)
        _add(node, "compromisedAccount", self.boolean(f"{role}.compromised", a.compromised))
        _add(node, "screenName", a.screen_name)
        for name in a.display_names:
            _add(node, "displayName", name)
        for url in a.profile_urls:
            _add(node, "profileUrl", url)
        _add(node, "profileBio", a.profile_bio)
        for n, event in enumerate(a.ip_events):
            self.ip_event(node, f"{role}.ip_events[{n}]", event)
        if a.disabled_temporarily is not None:
            _add(node, "accountTemporarilyDisabled", True, disabledDate=a.disabled_temporarily)
        if a.disabled_permanently is not None:
            _add(node, "accountPermanentlyDisabled", True, disabledDate=a.disabled_permanently)
        _add(node, "additionalInfo", a.additional_info)

    def ip_event(self, parent, name: str, e: IpEvent) -> None:
        try:
            ipaddress.ip_address(str(e.ip).strip())
        except ValueError:
            self.problem(f"{name}.ip: {e.ip!r} is not an IP address")
            return
        if e.port is not None and not (isinstance(e.port, int) and 0 <= e.port <= 65535):
            self.problem(f"{name}.port: {e.port!r} is not a port number")
            return
        node = etree.SubElement(parent, "ipCaptureEvent")
        _add(node, "ipAddress", str(e.ip).strip())
        _add(node, "eventName", self.choice(f"{name}.event", e.event, "ipCaptureType"))
        _add(node, "dateTime", e.at)
        _add(node, "possibleProxy", self.boolean(f"{name}.possible_proxy", e.possible_proxy))
        _add(node, "port", e.port)


def _lexical(value) -> str:
    """The schema's lexical form of a value: booleans ``true``/``false``, UTC dateTimes, ISO dates."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return xml_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return _NOT_XML.sub("\ufffd", str(value))


def _add(parent, tag: str, value, *, keep_empty: bool = False, **attrs):
    """Append ``<tag>value</tag>`` unless the value is missing (None or "", unless ``keep_empty``)."""
    if value is None or value == "":
        if not keep_empty:
            return None
        value = ""
    node = etree.SubElement(parent, tag, {k: _lexical(v) for k, v in attrs.items() if v is not None})
    node.text = _lexical(value)
    return node


__all__ = [
    "Account",
    "ChatIm",
    "CyberTipReport",
    "FileDetails",
    "Incident",
    "IpEvent",
    "Person",
    "Reporter",
    "WebPage",
    "file_details_xml",
    "report_xml",
    "xml_datetime",
]
