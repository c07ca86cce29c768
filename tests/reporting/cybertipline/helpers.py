"""Sample documents: a report and file details with every field the builder writes set."""

from __future__ import annotations

import datetime as dt

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
from safehold.reporting.cybertipline.vocabulary import INCIDENT_CSAM

AT = dt.datetime(2025, 11, 1, 9, 30, tzinfo=dt.UTC)


def minimal_report(**incident) -> CyberTipReport:
    return CyberTipReport(
        incident=Incident(**{"incident_type": INCIDENT_CSAM, "at": AT, **incident}),
        reporter=Reporter(person=Person(first_name="Trust", last_name="Safety", emails=["safety@example.org"])),
    )


def full_report() -> CyberTipReport:
    event = IpEvent(ip="192.0.2.10", event="Login", at=AT, possible_proxy=False, port=443)
    return CyberTipReport(
        incident=Incident(
            incident_type="Online Enticement of Children for Sexual Acts",
            at=AT,
            platform="Example Social",
            escalate_to_high_priority="The child appears to be in immediate danger.",
            annotations=["minorToMinorInteraction", "sextortion"],  # out of order on purpose
            at_description="First message seen",
        ),
        reporter=Reporter(
            person=Person(
                first_name="Trust", last_name="Safety", emails=["safety@example.org"], phones=["+1 555 0100"]
            ),
            company_template="Example Social, Inc.",
            terms_of_service="https://example.org/terms",
            legal_url="https://example.org/legal",
            contact=Person(first_name="Legal", emails=["legal@example.org"]),
        ),
        internet=[
            WebPage(
                urls=["https://example.org/p/1", "https://example.org/p/2"],
                additional_info="posts",
                third_party_hosted=False,
            ),
            ChatIm(client="Example Chat", room="dm", content="message text", additional_info="direct messages"),
        ],
        reported=[
            Account(
                esp_identifier="user-42",
                esp_service="Example Social",
                screen_name="offender",
                display_names=["Offender"],
                profile_urls=["https://example.org/u/offender"],
                person=Person(emails=["offender@example.net"], date_of_birth=dt.date(1990, 1, 2)),
                ip_events=[event, IpEvent(ip="2001:db8::1", event="Upload")],
                disabled_temporarily=AT,
                disabled_permanently=AT + dt.timedelta(days=1),
                additional_info="banned",
                compromised=False,
                profile_bio="bio",
            )
        ],
        recipients=[Account(esp_identifier="user-7", screen_name="kid", ip_events=[event], additional_info="minor")],
        victims=[Account(person=Person(first_name="V", age=13), esp_identifier="user-7", screen_name="kid")],
        additional_info="Bundles 3 cases.",
    )


def full_file_details(**changes) -> FileDetails:
    values = dict(
        report_id="1234567",
        file_id="a1b2c3",
        file_name="evidence-1.jpg",
        original_file_name="IMG_0001.jpg",
        uploaded_at=AT,
        location="https://example.org/media/1",
        viewed_by_esp=True,
        exif_viewed_by_esp=False,
        publicly_available=False,
        relevance="Reported",
        annotations=["generativeAi", "liveStreaming"],
        classification="A1",
        hashes=[("MD5", "0" * 32), ("SHA256", "1" * 64), ("PDQ", "f" * 64)],
        ip_event=IpEvent(ip="192.0.2.10", event="Upload", at=AT),
        additional_info=["first", "second"],
        exif={"Make": "Camera"},
    )
    values.update(changes)
    return FileDetails(**values)
