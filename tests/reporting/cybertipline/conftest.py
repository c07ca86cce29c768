"""Fixtures for the CyberTipline library: the reference schema (lxml and xmlschema), a stand-in and a client."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import REPO

SHARED_XSD = REPO.parent / "shared" / "data" / "cybertipline" / "cyber_tipline.xsd"


class Clock:
    """A stand-in clock that stays put until a test moves ``now`` (seconds) forward."""

    def __init__(self):
        self.now = dt.datetime(2025, 11, 10, 12, 0, tzinfo=dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def shared_xsd():
    if not SHARED_XSD.exists():
        pytest.skip(f"reference schema {SHARED_XSD} not present")
    return SHARED_XSD


@pytest.fixture(scope="session")
def reference(shared_xsd):
    """The reference schema, loaded by lxml (through ``Schema``)."""
    from safehold.reporting.cybertipline.schema import Schema

    return Schema.load(shared_xsd)


@pytest.fixture(scope="session")
def xsd(shared_xsd):
    """The reference schema, loaded by xmlschema: a second, independent validator."""
    import xmlschema

    return xmlschema.XMLSchema(str(shared_xsd))


@pytest.fixture
def valid(reference, xsd):
    """Assert a document is valid for both validators and return it parsed (lxml)."""
    from lxml import etree

    def check(xml: bytes):
        assert reference.errors(xml) == []
        xsd.validate(xml.decode("utf-8"))
        return etree.fromstring(xml)

    return check


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def standin(clock):
    from safehold.reporting.cybertipline.standin import StandIn

    s = StandIn(username="esp", password="s3cret-Pa55", clock=clock)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def tipline(standin):
    """A client for the stand-in with tiny back-offs."""
    from safehold.reporting.cybertipline.client import CyberTiplineClient

    with CyberTiplineClient(standin.url, "esp", "s3cret-Pa55", timeout=5, attempts=3, backoff=0.001) as c:
        yield c
