"""Arachnid Shield: the adapter against the local stand-in of C3P's API — media, PDQ-only and URL scans, the label
mapping and what a reviewer sees, every failure as its ``screening.*`` code and retry decision, credentials kept
out of messages and logs, and the bounded answer."""

from __future__ import annotations

import base64
import logging

import pytest
from pydantic import ValidationError

from safehold.screening.base import Media, ScreeningError
from safehold.screening.services import arachnid
from safehold.screening.services.arachnid import (
    ArachnidCredentials,
    ArachnidSettings,
    ArachnidShield,
    pdq_base64,
    request_for,
    scores_from_media,
    scores_from_pdq,
)
from safehold.screening.services.arachnid_standin import ArachnidStandIn
from tests.media import jpeg

USER, PASSWORD = "platform-7", "s3cret-Pa55word"
KNOWN = jpeg(1)
OTHER = jpeg(2)
PDQ = f"{0xC0FFEE:064x}"


@pytest.fixture
def standin():
    server = ArachnidStandIn(username=USER, password=PASSWORD)
    server.start()
    yield server
    server.stop()


def shield(standin, *, password=PASSWORD, **settings) -> ArachnidShield:
    settings.setdefault("timeout_seconds", 5)
    return ArachnidShield(
        ArachnidSettings(url=standin.url, **settings), ArachnidCredentials(username=USER, password=password)
    )


def image(data: bytes = KNOWN, *, pdq: str | None = PDQ, content_type: str = "image/jpeg") -> Media:
    return Media(data=data, content_type=content_type, pdq=pdq)


def failure(call) -> ScreeningError:
    with pytest.raises(ScreeningError) as info:
        call()
    return info.value


# -- normal answers -------------------------------------------------------------------------------------------------


def test_known_csam_by_upload_is_csam_at_one_with_what_a_reviewer_needs(standin):
    standin.add_media(KNOWN, "csam")
    [score] = shield(standin).classify(image())
    assert (score.label, score.score) == ("csam", 1.0)
    d = score.detail
    assert d["service"] == "arachnid_shield" and d["mode"] == "media"
    assert d["classification"] == "csam" and d["match_type"] == "exact"
    assert len(d["sha256_hex"]) == 64 and len(d["sha1_base32"]) == 32 and d["size_bytes"] == len(KNOWN)
    assert d["near_matches"] and d["near_matches"][0]["classification"] == "csam"
    [sent] = standin.received
    assert sent.path == "/v1/media/" and sent.body == KNOWN and sent.headers["content-type"] == "image/jpeg"


def test_harmful_abusive_material_is_its_own_label_with_a_high_score(standin):
    standin.add_media(KNOWN, "harmful-abusive-material", match_type="near")
    [score] = shield(standin).classify(image())
    assert score.label == "harmful_abusive_material" and 0.5 <= score.score < 1.0
    assert score.detail["match_type"] == "near"


def test_no_known_match_is_no_score(standin):
    standin.add_media(KNOWN, "csam")
    assert shield(standin).classify(image(OTHER)) == []


def test_the_mapping_table(standin):
    assert {c: arachnid.CLASSIFICATIONS[c] for c in ("csam", "no-known-match")} == {
        "csam": ("csam", 1.0), "no-known-match": None,
    }  # fmt: skip
    for classification, label in (("test", "arachnid_test"), ("a-new-class", "unclassified_match")):
        standin.add_media(KNOWN, classification)
        [score] = shield(standin).classify(image())
        assert score.label == label and score.label in ArachnidShield.labels and score.score >= 0.9
        assert score.detail["classification"] == classification


# -- PDQ mode: only the hash leaves ---------------------------------------------------------------------------------


def test_pdq_mode_sends_the_hash_and_no_byte_of_the_media(standin):
    standin.add_pdq(PDQ, "csam", distance=17)
    [score] = shield(standin, mode="pdq").classify(image())
    assert (score.label, score.score) == ("csam", 1.0)
    assert score.detail["mode"] == "pdq" and score.detail["match_type"] == "near"
    assert score.detail["near_matches"][0]["distance"] == 17
    [sent] = standin.received
    assert sent.path == "/v1/pdq/" and sent.json() == {"hashes": [pdq_base64(PDQ)]}
    assert KNOWN[:64] not in sent.body and len(sent.body) < 200
    assert shield(standin, mode="pdq").classify(image(pdq=f"{1:064x}")) == []


def test_pdq_mode_without_a_pdq_sends_nothing(standin):
    err = failure(lambda: shield(standin, mode="pdq").classify(image(pdq=None, content_type="video/mp4")))
    assert (err.code, err.retryable) == ("screening.not_supported", False)
    assert standin.received == []


def test_pdq_is_the_base64_of_its_32_bytes():
    assert base64.b64decode(pdq_base64("ab" * 32)) == b"\xab" * 32
    assert failure(lambda: pdq_base64("xyz")).code == "screening.not_supported"
    assert request_for(image(), "pdq").json == {"hashes": [pdq_base64(PDQ)]}


def test_a_video_is_uploaded_in_media_mode(standin):
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(64)  # only its bytes matter to the stand-in
    standin.add_media(video, "csam")
    [score] = shield(standin).classify(image(video, pdq=None, content_type="video/mp4; codecs=avc1"))
    assert score.label == "csam" and standin.received[0].headers["content-type"] == "video/mp4"


def test_a_type_it_does_not_scan_is_not_sent(standin):
    err = failure(lambda: shield(standin).classify(image(b"hello", content_type="text/plain")))
    assert err.code == "screening.not_supported" and standin.received == []


# -- URL endpoint ---------------------------------------------------------------------------------------------------


def test_scan_url_sends_only_the_url(standin):
    standin.add_media(KNOWN, "csam")
    standin.add_url("https://cdn.example/a.jpg", KNOWN)
    [score] = shield(standin).scan_url("https://cdn.example/a.jpg")
    assert score.label == "csam" and score.detail["mode"] == "url"
    [sent] = standin.received
    assert sent.path == "/v1/url/" and sent.json() == {"url": "https://cdn.example/a.jpg"}
    err = failure(lambda: shield(standin).scan_url("https://unregistered.example/b.jpg"))
    assert (err.code, err.retryable) == ("screening.rejected", False) and "not registered" in err.message
    assert failure(lambda: shield(standin).scan_url("ftp://x")).code == "screening.not_supported"


def test_check_proves_url_and_credentials_without_media(standin):
    assert shield(standin).check() == {"checked": True, "endpoint": "v1/pdq/"}
    [sent] = standin.received
    assert sent.path == "/v1/pdq/" and sent.json() == {"hashes": [pdq_base64("0" * 64)]}
    assert failure(lambda: shield(standin, password="wrong").check()).code == "screening.auth"


# -- failures -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (lambda s: s.fail(503), "screening.unavailable", True),
        (lambda s: s.fail(500), "screening.unavailable", True),
        (lambda s: s.drop(), "screening.unavailable", True),
        (lambda s: s.fail(403, body={"detail": "Forbidden"}), "screening.auth", False),
        (lambda s: s.fail(413, body={"detail": "Too large"}), "screening.rejected", False),
        (lambda s: s.fail(404), "screening.protocol", False),
        (lambda s: s.fail(302), "screening.protocol", False),
        (lambda s: s.malformed(), "screening.protocol", False),
        (lambda s: s.fail(200, body=[1, 2]), "screening.protocol", False),
        (lambda s: s.fail(200, body={"classification": 3}), "screening.protocol", False),
        (lambda s: s.fail(200, body={"classification": "csam", "match_type": "fuzzy"}), "screening.protocol", False),
    ],
)
def test_each_failure_is_its_code_and_retry_decision(standin, fault, code, retryable):
    fault(standin)
    err = failure(lambda: shield(standin).classify(image()))
    assert (err.code, err.retryable) == (code, retryable), err.message
    assert err.message.startswith("Arachnid Shield")


def test_rate_limit_keeps_retry_after(standin):
    standin.fail(429, retry_after=42)
    err = failure(lambda: shield(standin).classify(image()))
    assert (err.code, err.retryable, err.retry_after) == ("screening.rate_limited", True, 42.0)


def test_a_stalled_answer_is_a_retryable_timeout(standin):
    standin.slow(3)
    err = failure(lambda: shield(standin, timeout_seconds=0.3).classify(image()))
    assert (err.code, err.retryable) == ("screening.unavailable", True)


def test_the_answer_is_bounded(standin):
    standin.oversized(8192)
    err = failure(lambda: shield(standin, max_response_bytes=4096).classify(image()))
    assert (err.code, err.retryable) == ("screening.protocol", False) and "4096" in err.message


def test_credentials_never_in_messages_or_logs(standin, caplog):
    caplog.set_level(logging.DEBUG)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    standin.fail(401, body={"detail": f"bad login {USER}:{PASSWORD} ({token})"})
    err = failure(lambda: shield(standin).classify(image()))
    assert err.code == "screening.auth" and not err.retryable
    standin.fail(400, body={"detail": f"echo {PASSWORD} {token}"})
    rejected = failure(lambda: shield(standin).classify(image()))
    assert rejected.code == "screening.rejected" and "***" in rejected.message
    wrong = failure(lambda: shield(standin, password="other-Secret-9").classify(image()))
    assert (wrong.code, wrong.retryable) == ("screening.auth", False)
    creds = ArachnidCredentials(username=USER, password=PASSWORD)
    for text in (err.message, rejected.message, wrong.message, repr(creds), str(err.to_dict()), caplog.text):
        assert PASSWORD not in text and token not in text and "other-Secret-9" not in text


# -- settings and parsing -------------------------------------------------------------------------------------------


def test_settings_refuse_an_unsafe_url_and_unknown_keys():
    for url in ("http://shield.example", "https://10.0.0.8", "ftp://x"):
        with pytest.raises(ValidationError):
            ArachnidSettings(url=url)
    with pytest.raises(ValidationError):
        ArachnidSettings(mode="everything")
    with pytest.raises(ValidationError):
        ArachnidSettings(colour="red")
    assert ArachnidSettings().url.startswith("https://") and ArachnidSettings().mode == "media"


def test_both_near_match_shapes_are_read_and_bounded():
    one = {"classification": "csam", "match_type": "near", "near_match_details": {"sha256_hex": "AB", "timestamp": 3}}
    [s] = scores_from_media(one)
    assert s.detail["near_matches"] == [{"sha256_hex": "AB", "timestamp": 3}]
    many = {**one, "near_match_details": [{"classification": "csam", "x": "dropped"}] * 50}
    [s] = scores_from_media(many)
    assert len(s.detail["near_matches"]) == arachnid.MAX_NEAR_MATCHES and "x" not in s.detail["near_matches"][0]
    with pytest.raises(ScreeningError):
        scores_from_media({**one, "near_match_details": ["not an object"]})
    with pytest.raises(ScreeningError):
        scores_from_media({**one, "sha256_hex": "x" * 10_000})


def test_a_pdq_answer_must_cover_the_hash_sent():
    sent = pdq_base64(PDQ)
    assert scores_from_pdq({"scanned_hashes": {sent: {"classification": "no-known-match"}}}, sent) == []
    with pytest.raises(ScreeningError):
        scores_from_pdq({"scanned_hashes": {}}, sent)
    with pytest.raises(ScreeningError):
        scores_from_pdq({"results": []}, sent)
