"""Google's Content Safety API adapter against its stand-in: priorities become scores, every failure a stable
``screening.*`` code that says whether to retry, and the key never shows."""

from __future__ import annotations

import pytest

from safehold.screening.base import Media, ScreeningError
from safehold.screening.services.google import PRIORITY_SCORES, GoogleContentSafety, GoogleCredentials, GoogleSettings
from tests.media import jpeg
from tests.screening.conftest import KEY

IMAGE = Media(jpeg(1), "image/jpeg")


def client(url: str, key: str = KEY, timeout: float = 2.0) -> GoogleContentSafety:
    return GoogleContentSafety(GoogleSettings(url=url, timeout_seconds=timeout), GoogleCredentials(api_key=key))


def failure(service: GoogleContentSafety, media: Media = IMAGE) -> ScreeningError:
    with pytest.raises(ScreeningError) as err:
        service.classify(media)
    return err.value


@pytest.mark.parametrize("priority", list(PRIORITY_SCORES))
def test_each_priority_becomes_its_documented_score(google, priority):
    google.answer_for(IMAGE.data, priority)
    [score] = client(google.url).classify(IMAGE)
    assert (score.label, score.score) == ("csam", PRIORITY_SCORES[priority])
    assert score.detail["priority"] == priority and score.detail["model_version"] == "standin-1"


def test_the_same_image_always_gets_the_same_answer(google):
    assert client(google.url).classify(IMAGE) == client(google.url).classify(IMAGE)
    assert google.classified == 2


def test_a_rate_limit_is_retryable_after_what_the_service_said(google):
    google.fail(429, retry_after=17)
    err = failure(client(google.url))
    assert (err.code, err.retryable, err.retry_after) == ("screening.rate_limited", True, 17)


def test_a_server_error_is_retried_and_the_next_call_works(google):
    google.fail(503)
    err = failure(client(google.url))
    assert (err.code, err.retryable) == ("screening.unavailable", True)
    assert client(google.url).classify(IMAGE)


def test_a_slow_answer_is_a_retryable_timeout(google):
    google.slow(1.5)
    err = failure(client(google.url, timeout=0.3))
    assert (err.code, err.retryable) == ("screening.unavailable", True)


def test_a_refused_key_is_not_retried_and_never_shown(google):
    err = failure(client(google.url, key="wrong-key-123456"))
    assert (err.code, err.retryable) == ("screening.auth", False)
    assert "wrong-key" not in str(err) and "wrong-key" not in str(err.detail)


def test_a_broken_answer_is_a_protocol_error(google):
    google.fail(200, body=b"<html>not json")
    assert failure(client(google.url)).code == "screening.protocol"
    google.fail(200, body={"reviewPriorities": ["PROBABLY"]})
    assert failure(client(google.url)).code == "screening.protocol"


def test_what_is_not_an_image_is_never_sent(google):
    err = failure(client(google.url), Media(b"%PDF-1.4", "application/pdf"))
    assert (err.code, err.retryable) == ("screening.rejected", False)
    assert google.requests == []


def test_only_https_or_this_machine(google):
    with pytest.raises(ValueError):
        GoogleSettings(url="http://contentsafety.example/v1beta1")
    with pytest.raises(ValueError):
        GoogleSettings(url="https://169.254.169.254/")


def test_check_sends_a_generated_image(google):
    assert client(google.url).check()["checked"] is True
