"""The SSRF guard refuses every IANA special-purpose range by an explicit list (not the interpreter's tables),
and judges IPv4 carried inside IPv6 (mapped, NAT64, 6to4) as the IPv4 address it is."""

from __future__ import annotations

import ipaddress

import pytest

from safehold.errors import SafeholdError
from safehold.scanning.fetch import UrlGuard, forbidden_address

FORBIDDEN = [
    # IPv4: one address at each end of every range
    "0.0.0.0",
    "0.255.255.255",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "169.254.0.1",
    "172.16.0.1",
    "172.31.255.254",
    "192.0.0.1",
    "192.0.0.170",
    "192.0.0.255",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.0.1",
    "192.168.255.254",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.254",
    "255.255.255.255",
    # IPv6
    "::",
    "::1",
    "::127.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:192.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",
    "64:ff9b::c000:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::808:808",
    "100::1",
    "100::ffff",
    "2001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:1ff::1",
    "2001:db8::1",
    "2001:db8:ffff::1",
    "2002:7f00:1::1",
    "2002:c000:1::",
    "2002:a9fe:a9fe::1",
    "2002:0a00:0001::",
    "2002:c0a8:0101::1",
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "4000::1",
    "::2",
    "1::1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "192.0.1.1",
    "192.0.3.1",
    "192.88.98.1",
    "100.63.255.255",
    "100.128.0.1",
    "172.15.255.255",
    "172.32.0.1",
    "198.17.255.255",
    "198.20.0.1",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2001:4860:4860::8888",
    "2001:200::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_special_purpose_addresses_are_refused(address):
    addr = ipaddress.ip_address(address)
    assert forbidden_address(addr)
    with pytest.raises(SafeholdError) as exc:
        UrlGuard().check("example.test", [addr])
    assert exc.value.code == "url.forbidden_address"


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert not forbidden_address(ipaddress.ip_address(address))
    UrlGuard().check("example.test", [ipaddress.ip_address(address)])


def test_the_guard_does_not_consult_the_interpreters_tables(monkeypatch):
    """Whatever ``ipaddress`` thinks is global, the explicit list decides."""
    monkeypatch.setattr(ipaddress.IPv4Address, "is_global", property(lambda self: True))
    monkeypatch.setattr(ipaddress.IPv4Address, "is_private", property(lambda self: False))
    assert forbidden_address(ipaddress.ip_address("192.0.0.8"))
    assert forbidden_address(ipaddress.ip_address("2002:c000:8::"))


def test_an_allow_listed_network_is_still_reachable():
    UrlGuard(["192.0.0.0/24"]).check("internal", [ipaddress.ip_address("192.0.0.8")])
    UrlGuard(["intranet.example"]).check("intranet.example", [ipaddress.ip_address("10.1.2.3")])
