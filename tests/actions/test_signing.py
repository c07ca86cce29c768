"""Signatures: what a receiver checks before acting on a request."""

from __future__ import annotations

import hashlib
import hmac

from safehold.actions.signing import sign, verify

SECRET = "whsec_test"
BODY = b'{"event":"action.remove_content","id":"k1"}'


def test_header_is_timestamp_and_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, 1700000000) == f"t=1700000000,v1={expected}"


def test_verify_accepts_the_signature_within_tolerance():
    header = sign(SECRET, BODY, 1700000000)
    assert verify(SECRET, header, BODY, now=1700000000 + 299)
    assert verify(SECRET, header, BODY.decode(), now=1700000000 - 299)


def test_verify_refuses_wrong_secret_tampered_body_and_stale_or_future_timestamps():
    header = sign(SECRET, BODY, 1700000000)
    assert not verify("whsec_other", header, BODY, now=1700000000)
    assert not verify(SECRET, header, BODY + b" ", now=1700000000)
    assert not verify(SECRET, header, BODY, now=1700000000 + 301)
    assert not verify(SECRET, header, BODY, now=1700000000 - 301)
    # Re-signing another timestamp needs the secret: moving t alone breaks the HMAC.
    replayed = header.replace("t=1700000000", "t=1700000500")
    assert not verify(SECRET, replayed, BODY, now=1700000500)


def test_verify_never_raises_on_malformed_headers():
    for header in ("", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1700000000,v1=", None):
        assert not verify(SECRET, header, BODY, now=1700000000)


def test_any_of_several_signatures_may_match():
    good = sign(SECRET, BODY, 1700000000)
    header = good.replace("v1=", "v1=" + "0" * 64 + ",v1=")
    assert verify(SECRET, header, BODY, now=1700000000)
