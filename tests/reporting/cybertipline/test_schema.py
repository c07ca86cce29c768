"""The bundled schema, its vocabulary and safe validation."""

from __future__ import annotations

import threading

import pytest

from safehold.errors import SafeholdError
from safehold.reporting.cybertipline import vocabulary
from safehold.reporting.cybertipline.schema import BUNDLED, Schema

from .helpers import minimal_report


def test_bundled_copy_is_the_reference_schema(shared_xsd):
    assert BUNDLED.read_bytes() == shared_xsd.read_bytes()
    assert Schema.load() is Schema.load(None) is Schema.load(BUNDLED)
    assert Schema.load().bundled and Schema.load().text == BUNDLED.read_bytes()


@pytest.mark.parametrize("name", sorted(vocabulary.ENUMERATIONS))
def test_vocabulary_equals_the_schema_enumerations(name, xsd, reference):
    expected = tuple(v for v in xsd.types[name].enumeration if v)  # "" (country, state) = leave the element out
    assert vocabulary.ENUMERATIONS[name] == expected
    assert reference.enumeration(name) == expected


def test_every_enumerated_type_has_a_constant(xsd):
    enumerated = {name for name, t in xsd.types.items() if getattr(t, "enumeration", None)}
    assert enumerated == set(vocabulary.ENUMERATIONS)


@pytest.mark.parametrize("name", sorted(vocabulary.FLAGS))
def test_annotation_flags_equal_the_schema(name, xsd, reference):
    expected = tuple(e.local_name for e in xsd.types[name].content.iter_elements())
    assert vocabulary.FLAGS[name] == expected == reference.flags(name)


def test_vocabulary_has_what_the_issue_names():
    assert vocabulary.INCIDENT_ENTICEMENT in vocabulary.INCIDENT_TYPES
    assert {"sextortion", "csamSolicitation", "minorToMinorInteraction"} <= set(vocabulary.REPORT_ANNOTATIONS)
    assert {"generativeAi", "liveStreaming"} <= set(vocabulary.FILE_ANNOTATIONS)
    assert vocabulary.INDUSTRY_CLASSIFICATIONS == ("A1", "A2", "B1", "B2")
    assert not set(vocabulary.DOCUMENTED_REPORT_ANNOTATIONS) & set(vocabulary.REPORT_ANNOTATIONS)


def test_unknown_types_are_key_errors(reference):
    with pytest.raises(KeyError):
        reference.enumeration("noSuchType")
    with pytest.raises(KeyError):
        reference.flags("noSuchType")


def test_validate_reports_the_schema_errors(reference):
    bad = b"<report><incidentSummary><incidentType>Nope</incidentType></incidentSummary></report>"
    errors = reference.errors(bad)
    assert errors and all(e.startswith("line ") for e in errors)
    with pytest.raises(SafeholdError) as e:
        reference.validate(bad)
    assert (e.value.code, e.value.status) == ("cybertip.invalid_document", 422)
    assert e.value.detail["errors"] == errors


@pytest.mark.parametrize(
    "doc",
    [
        b"<report>",  # not well-formed
        b"",
        b'<?xml version="1.0"?><!DOCTYPE report [<!ENTITY x "y">]><report>&x;</report>',
        b'<?xml version="1.0"?><!DOCTYPE report SYSTEM "file:///etc/passwd"><report/>',
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><report>&c;</report>',
    ],
)
def test_untrusted_documents_are_refused_not_expanded(reference, doc):
    errors = reference.errors(doc)
    assert errors and "passwd" not in " ".join(errors) and "root:" not in " ".join(errors)


def test_a_missing_or_foreign_schema_is_a_clear_error(tmp_path):
    with pytest.raises(SafeholdError) as e:
        Schema.load(tmp_path / "missing.xsd")
    assert e.value.code == "cybertip.schema" and "SAFEHOLD_CYBERTIP_SCHEMA" in e.value.message
    other = tmp_path / "other.xsd"
    other.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="x" type="xs:string"/></xs:schema>'
    )
    with pytest.raises(SafeholdError) as e:
        Schema.load(other)
    assert e.value.code == "cybertip.schema" and "not a CyberTipline schema" in e.value.message


def test_concurrent_validations_keep_their_own_errors(reference):
    from safehold.reporting.cybertipline.builder import report_xml

    good = report_xml(minimal_report(), reference)
    bad = good.replace(b"<incidentType>Child", b"<incidentType>Kid")
    results: list[bool] = []

    def run(doc, expect_valid):
        for _ in range(30):
            results.append((reference.errors(doc) == []) == expect_valid)

    threads = [threading.Thread(target=run, args=(d, v)) for d, v in [(good, True), (bad, False)] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 180 and all(results)
