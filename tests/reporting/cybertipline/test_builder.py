"""Documents in schema order, valid against the reference schema (lxml and xmlschema), bad values refused."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from safehold.errors import SafeholdError
from safehold.reporting.cybertipline import vocabulary
from safehold.reporting.cybertipline.builder import (
    Account,
    ChatIm,
    IpEvent,
    Person,
    file_details_xml,
    report_xml,
    xml_datetime,
)
from safehold.reporting.cybertipline.schema import BUNDLED, Schema

from .helpers import full_file_details, full_report, minimal_report

REPORT_ORDER = [
    "incidentSummary",
    "internetDetails",
    "lawEnforcement",
    "reporter",
    "personOrUserReported",
    "intendedRecipient",
    "victim",
    "additionalInfo",
]
FILE_ORDER = [
    "reportId",
    "fileId",
    "fileName",
    "originalFileName",
    "uploadedToEspTimestamp",
    "locationOfFile",
    "fileViewedByEsp",
    "exifViewedByEsp",
    "publiclyAvailable",
    "fileRelevance",
    "fileAnnotations",
    "industryClassification",
    "originalFileHash",
    "ipCaptureEvent",
    "deviceId",
    "details",
    "additionalInfo",
]


def tags(node) -> list[str]:
    return [child.tag for child in node]


def in_order(found: list[str], order: list[str]) -> bool:
    ranks = [order.index(t) for t in found]
    return ranks == sorted(ranks)


def invalid_value(fn, *args) -> SafeholdError:
    with pytest.raises(SafeholdError) as e:
        fn(*args)
    assert e.value.code == "cybertip.invalid_value" and e.value.status == 422
    return e.value


def test_full_report_is_valid_and_in_schema_order(valid):
    root = valid(report_xml(full_report()))
    found = tags(root)
    assert in_order(found, REPORT_ORDER)
    assert set(found) == set(REPORT_ORDER) - {"lawEnforcement"}
    assert tags(root.find("incidentSummary")) == [
        "incidentType",
        "platform",
        "escalateToHighPriority",
        "reportAnnotations",
        "incidentDateTime",
        "incidentDateTimeDescription",
    ]
    # flags in the schema's order, written as <flag>true</flag>
    flags = root.find("incidentSummary/reportAnnotations")
    assert [(f.tag, f.text) for f in flags] == [("sextortion", "true"), ("minorToMinorInteraction", "true")]
    reported = root.find("personOrUserReported")
    assert tags(reported) == [
        "personOrUserReportedPerson",
        "espIdentifier",
        "espService",
        "compromisedAccount",
        "screenName",
        "displayName",
        "profileUrl",
        "profileBio",
        "ipCaptureEvent",
        "ipCaptureEvent",
        "accountTemporarilyDisabled",
        "accountPermanentlyDisabled",
        "additionalInfo",
    ]
    assert tags(reported.find("ipCaptureEvent")) == ["ipAddress", "eventName", "dateTime", "possibleProxy", "port"]
    disabled = reported.find("accountTemporarilyDisabled")
    assert (disabled.text, disabled.get("disabledDate")) == ("true", "2025-11-01T09:30:00Z")
    assert tags(root.find("victim"))[0] == "victimPerson"
    assert tags(root.find("reporter")) == [
        "reportingPerson",
        "contactPerson",
        "companyTemplate",
        "termsOfService",
        "legalURL",
    ]
    assert root.find("internetDetails/webPageIncident").get("thirdPartyHostedContent") == "false"


def test_minimal_report_is_valid(valid):
    root = valid(report_xml(minimal_report()))
    assert tags(root) == ["incidentSummary", "reporter"]
    assert tags(root.find("incidentSummary")) == ["incidentType", "incidentDateTime"]


def test_full_file_details_are_valid_and_in_schema_order(valid):
    root = valid(file_details_xml(full_file_details()))
    found = tags(root)
    assert in_order(found, FILE_ORDER)
    assert set(FILE_ORDER) - set(found) == {"deviceId"}
    assert [(f.tag, f.text) for f in root.find("fileAnnotations")] == [
        ("liveStreaming", "true"),
        ("generativeAi", "true"),
    ]
    assert [(h.get("hashType"), len(h.text)) for h in root.iter("originalFileHash")] == [
        ("MD5", 32),
        ("SHA256", 64),
        ("PDQ", 64),
    ]


def test_viewed_flags_none_is_omitted_false_is_written(valid):
    root = valid(
        file_details_xml(full_file_details(viewed_by_esp=None, exif_viewed_by_esp=False, publicly_available=None))
    )
    assert root.find("fileViewedByEsp") is None and root.find("publiclyAvailable") is None
    assert root.findtext("exifViewedByEsp") == "false"
    minimal = valid(
        file_details_xml(
            full_file_details(
                file_name=None,
                original_file_name=None,
                uploaded_at=None,
                location=None,
                viewed_by_esp=None,
                exif_viewed_by_esp=None,
                publicly_available=None,
                relevance=None,
                annotations=[],
                classification=None,
                hashes=[],
                ip_event=None,
                additional_info=[],
                exif={},
            )
        )
    )
    assert tags(minimal) == ["reportId", "fileId"]


@pytest.mark.parametrize("incident_type", vocabulary.INCIDENT_TYPES)
def test_every_incident_type(valid, incident_type):
    root = valid(report_xml(minimal_report(incident_type=incident_type)))
    assert root.findtext("incidentSummary/incidentType") == incident_type


def test_every_annotation_classification_relevance_and_event(valid):
    valid(report_xml(minimal_report(annotations=list(vocabulary.REPORT_ANNOTATIONS))))
    valid(file_details_xml(full_file_details(annotations=list(vocabulary.FILE_ANNOTATIONS))))
    for value in vocabulary.INDUSTRY_CLASSIFICATIONS:
        assert (
            valid(file_details_xml(full_file_details(classification=value))).findtext("industryClassification") == value
        )
    for value in vocabulary.FILE_RELEVANCE:
        valid(file_details_xml(full_file_details(relevance=value)))
    for value in vocabulary.IP_CAPTURE_EVENTS:
        valid(file_details_xml(full_file_details(ip_event=IpEvent(ip="198.51.100.1", event=value))))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"classification": "C3"}, "classification"),
        ({"relevance": "Important"}, "relevance"),
        ({"annotations": ["generativeAI"]}, "annotations"),
        ({"viewed_by_esp": "yes"}, "viewed_by_esp"),
        ({"hashes": [("MD5", "")]}, "hashes[0]"),
        ({"ip_event": IpEvent(ip="not-an-ip")}, "ip_event.ip"),
        ({"ip_event": IpEvent(ip="192.0.2.1", port=70000)}, "ip_event.port"),
        ({"ip_event": IpEvent(ip="192.0.2.1", event="Logout")}, "ip_event.event"),
    ],
)
def test_bad_file_values_are_refused(changes, field):
    error = invalid_value(file_details_xml, full_file_details(**changes))
    assert error.detail["errors"][0].startswith(f"{field}:")


def test_bad_report_values_are_refused_together():
    report = minimal_report(incident_type="Spam", annotations=["sextortion", "nudity"])
    report.reported = [Account(ip_events=[IpEvent(ip="192.0.2.1", event="Logoff")], person=Person(age=-1))]
    error = invalid_value(report_xml, report)
    assert [e.split(":")[0] for e in error.detail["errors"]] == [
        "incident_type",
        "annotations",
        "personOrUserReportedPerson.age",
        "personOrUserReported.ip_events[0].event",
    ]
    assert "Online Enticement of Children for Sexual Acts" in error.message  # names what is allowed


def test_a_victim_needs_a_person(valid):
    report = minimal_report()
    report.victims = [Account(screen_name="kid")]
    assert "victimPerson" in invalid_value(report_xml, report).message
    report.victims = [Account(screen_name="kid", person=Person(age=12))]
    assert tags(valid(report_xml(report)).find("victim")) == ["victimPerson", "screenName"]


def test_informational_needs_a_schema_that_declares_it(tmp_path, xsd):
    report = minimal_report(annotations=["informational"])
    error = invalid_value(report_xml, report)
    assert "SAFEHOLD_CYBERTIP_SCHEMA" in error.message and "informational" in error.message

    newer = tmp_path / "cyber_tipline.xsd"
    text = BUNDLED.read_text()
    anchor = '<xs:element name="sextortion" minOccurs="0" type="xs:boolean" fixed="true">'
    assert text.count(anchor) == 1
    newer.write_text(
        text.replace(anchor, '<xs:element name="informational" minOccurs="0" type="xs:boolean" fixed="true"/>' + anchor)
    )
    schema = Schema.load(newer)
    assert "informational" in schema.flags("reportAnnotations")
    xml = report_xml(report, schema)
    assert b"<informational>true</informational>" in xml
    assert xsd.is_valid(xml.decode()) is False  # the 2025-11-10 copy indeed does not know it


def test_times_are_utc_datetimes_with_a_zone(valid):
    naive = dt.datetime(2025, 1, 2, 3, 4, 5, 678)
    eastern = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert xml_datetime(naive) == "2025-01-02T03:04:05Z"
    assert xml_datetime(eastern) == "2025-01-02T08:04:05Z"
    root = valid(report_xml(minimal_report(at=eastern)))
    assert root.findtext("incidentSummary/incidentDateTime") == "2025-01-02T08:04:05Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", root.findtext("incidentSummary/incidentDateTime"))
    assert "incident.at" in invalid_value(report_xml, minimal_report(at="yesterday")).message


def test_text_keeps_unicode_and_drops_what_xml_cannot_carry(valid):
    report = minimal_report()
    report.internet = [ChatIm(content="héllo \x00\x1b wörld <b>&amp;</b> 😀")]
    root = valid(report_xml(report))
    assert root.findtext("internetDetails/chatImIncident/content") == "héllo \ufffd\ufffd wörld <b>&amp;</b> 😀"


def test_values_the_checks_miss_are_caught_by_the_schema():
    with pytest.raises(SafeholdError) as e:
        file_details_xml(full_file_details(report_id="not-a-number"))
    assert e.value.code == "cybertip.invalid_document" and e.value.detail["errors"]


def test_the_given_schema_is_used(tmp_path):
    narrower = tmp_path / "narrow.xsd"
    narrower.write_text(BUNDLED.read_text().replace('<xs:enumeration value="B2" />', ""))
    with pytest.raises(SafeholdError) as e:
        file_details_xml(full_file_details(classification="B2"), Schema.load(narrower))
    assert e.value.code == "cybertip.invalid_value"
    assert file_details_xml(full_file_details(classification="B2"))  # the bundled one has it
