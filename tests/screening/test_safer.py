"""Safer Predict: the adapter against the local stand-in of the protocol it assumes — per-class probabilities
mapped to labels, every failure as its ``screening.*`` code and retry decision, the key kept out of messages and
logs, and the bounded answer."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from safehold.screening.base import Media, ScreeningError
from safehold.screening.services import safer
from safehold.screening.services.safer import SaferCredentials, SaferPredict, SaferSettings, scores_from_answer
from safehold.screening.services.safer_standin import SaferStandIn
from tests.media import jpeg

KEY = "sk-live-Example-Key-0042"
FLAGGED = jpeg(11)
PLAIN = jpeg(12)


@pytest.fixture
def standin():
    server = SaferStandIn(api_key=KEY)
    server.start()
    yield server
    server.stop()


def predict(standin, *, key=KEY, **settings) -> SaferPredict:
    settings.setdefault("timeout_seconds", 5)
    return SaferPredict(SaferSettings(url=standin.url, **settings), SaferCredentials(api_key=key))


def image(data: bytes = FLAGGED, content_type: str = "image/jpeg") -> Media:
    return Media(data=data, content_type=content_type)


def failure(call) -> ScreeningError:
    with pytest.raises(ScreeningError) as info:
        call()
    return info.value


def by_label(scores) -> dict:
    return {s.label: s for s in scores}


def test_scores_per_class_map_to_labels(standin):
    standin.predict(FLAGGED, csam=0.91, pornography=0.06)
    scores = by_label(predict(standin).classify(image()))
    assert set(scores) == {"csam", "explicit"} <= set(SaferPredict.labels)
    assert scores["csam"].score == pytest.approx(0.91) and scores["explicit"].score == pytest.approx(0.06)
    d = scores["csam"].detail
    assert d["service"] == "safer_predict" and d["class"] == "csam" and d["model_version"] == "standin-1"
    assert d["predictions"] == pytest.approx({"csam": 0.91, "pornography": 0.06, "other": 0.03})
    [sent] = standin.received
    assert sent.path == "/v1/classify/image" and sent.body == FLAGGED and sent.headers["content-type"] == "image/jpeg"


def test_a_benign_image_scores_low_and_other_is_never_a_label(standin):
    scores = by_label(predict(standin).classify(image(PLAIN)))
    assert max(s.score for s in scores.values()) < SaferPredict.threshold
    assert "other" not in scores and scores["csam"].detail["predictions"]["other"] == pytest.approx(0.98)


def test_unknown_classes_are_kept_in_the_detail_not_scored(standin):
    standin.predict(FLAGGED, csam=0.2, pornography=0.1, violence=0.5)
    scores = by_label(predict(standin).classify(image()))
    assert set(scores) == {"csam", "explicit"} and scores["csam"].detail["predictions"]["violence"] == 0.5


def test_the_path_is_a_setting(standin):
    other = SaferStandIn(api_key=KEY, path="api/v2/predict")
    other.start()
    try:
        s = SaferPredict(SaferSettings(url=other.url, classify_path="api/v2/predict"), SaferCredentials(api_key=KEY))
        assert by_label(s.classify(image(PLAIN)))["csam"].score < 0.5
    finally:
        other.stop()
    assert failure(lambda: predict(standin, classify_path="api/v2/predict").classify(image())).code == (
        "screening.protocol"  # a 404: the configured path is wrong, an operator must act
    )


def test_only_images_are_sent(standin):
    err = failure(lambda: predict(standin).classify(image(b"\x00" * 10, "video/mp4")))
    assert (err.code, err.retryable) == ("screening.not_supported", False) and standin.received == []


def test_check_classifies_a_generated_grey_image(standin):
    assert predict(standin).check() == {"checked": True, "endpoint": "v1/classify/image"}
    [sent] = standin.received
    assert sent.headers["content-type"] == "image/png" and sent.body == safer.check_image()
    assert failure(lambda: predict(standin, key="wrong").check()).code == "screening.auth"


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (lambda s: s.fail(502), "screening.unavailable", True),
        (lambda s: s.fail(503), "screening.unavailable", True),
        (lambda s: s.drop(), "screening.unavailable", True),
        (lambda s: s.fail(401), "screening.auth", False),
        (lambda s: s.fail(403), "screening.auth", False),
        (lambda s: s.fail(415, body={"message": "Unsupported"}), "screening.rejected", False),
        (lambda s: s.fail(422), "screening.rejected", False),
        (lambda s: s.fail(409), "screening.protocol", False),
        (lambda s: s.fail(307), "screening.protocol", False),
        (lambda s: s.malformed(), "screening.protocol", False),
        (lambda s: s.fail(200, body={"scores": {}}), "screening.protocol", False),
        (lambda s: s.fail(200, body={"predictions": {"pornography": 0.5}}), "screening.protocol", False),
        (lambda s: s.fail(200, body={"predictions": {"csam": 1.5}}), "screening.protocol", False),
        (lambda s: s.fail(200, body={"predictions": {"csam": "high"}}), "screening.protocol", False),
        (lambda s: s.fail(200, body={"predictions": {"csam": True}}), "screening.protocol", False),
    ],
)
def test_each_failure_is_its_code_and_retry_decision(standin, fault, code, retryable):
    fault(standin)
    err = failure(lambda: predict(standin).classify(image()))
    assert (err.code, err.retryable) == (code, retryable), err.message
    assert err.message.startswith("Safer Predict")


def test_rate_limit_keeps_retry_after(standin):
    standin.fail(429, retry_after=7)
    err = failure(lambda: predict(standin).classify(image()))
    assert (err.code, err.retryable, err.retry_after) == ("screening.rate_limited", True, 7.0)
    standin.rate_limit(1, per=60)
    predict(standin).classify(image())
    limited = failure(lambda: predict(standin).classify(image()))
    assert limited.code == "screening.rate_limited" and 0 < limited.retry_after <= 60


def test_a_stalled_answer_is_a_retryable_timeout(standin):
    standin.slow(3)
    err = failure(lambda: predict(standin, timeout_seconds=0.3).classify(image()))
    assert (err.code, err.retryable) == ("screening.unavailable", True)


def test_the_answer_is_bounded(standin):
    standin.oversized(1 << 16)
    err = failure(lambda: predict(standin, max_response_bytes=2048).classify(image()))
    assert (err.code, err.retryable) == ("screening.protocol", False) and "2048" in err.message


def test_the_key_never_in_messages_or_logs(standin, caplog):
    caplog.set_level(logging.DEBUG)
    standin.fail(400, body={"message": f"bad request for key {KEY}"})
    rejected = failure(lambda: predict(standin).classify(image()))
    assert rejected.code == "screening.rejected" and "***" in rejected.message
    wrong = failure(lambda: predict(standin, key="sk-live-Other-Key-77").classify(image()))
    assert wrong.code == "screening.auth"
    for text in (rejected.message, wrong.message, repr(SaferCredentials(api_key=KEY)), caplog.text):
        assert KEY not in text and "sk-live-Other-Key-77" not in text


def test_settings_refuse_an_unsafe_url_or_path_and_unknown_keys():
    for url in ("http://safer.example", "https://169.254.169.254"):
        with pytest.raises(ValidationError):
            SaferSettings(url=url)
    for path in ("../admin", "v1/x?key=1", ""):
        with pytest.raises(ValidationError):
            SaferSettings(url="https://api.safer.example", classify_path=path)
    with pytest.raises(ValidationError):
        SaferSettings(url="https://api.safer.example", api_key="in the wrong place")


def test_parsing_is_strict_and_bounded():
    many = {"csam": 0.1, **{f"class{i}": 0.0 for i in range(100)}}
    [csam] = scores_from_answer({"predictions": many})
    assert len(csam.detail["predictions"]) == 1 + safer.MAX_EXTRA_CLASSES
    with pytest.raises(ScreeningError):
        scores_from_answer({"predictions": {"csam": 0.1}, "model_version": "v" * 10_000})
    with pytest.raises(ScreeningError):
        scores_from_answer({"predictions": {"csam": float("nan")}})
