"""The bounded JSON request the StopNCII, ThreatExchange and TAT exchanges share: every failure one stable code."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from safehold.sharing import registry
from safehold.sharing.base import ExchangeError
from safehold.sharing.exchanges._http import JsonHttp, retry_after
from safehold.sharing.exchanges.stopncii import StopNCIICredentials, StopNCIIExchange, StopNCIISettings


def http_answering(handler, *, max_body_bytes=1 << 20, secrets=()) -> JsonHttp:
    ex = StopNCIIExchange(
        StopNCIISettings(base_url="https://stopncii.invalid/v1"),
        StopNCIICredentials(subscription_key="s", fetch_function_key="f"),
        max_body_bytes=max_body_bytes,
        transport=httpx.MockTransport(handler),
    )
    return JsonHttp(ex, ex.settings.base_url, title="Test source", secrets=secrets)


def code_of(http: JsonHttp) -> ExchangeError:
    with pytest.raises(ExchangeError) as err, http:
        http.request("GET", "FetchHashes")
    return err.value


def test_retry_after_reads_seconds_and_dates():
    assert retry_after("120") == 120
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= retry_after(later) <= 61
    assert retry_after(None) is None and retry_after("soon") is None


@pytest.mark.parametrize(
    ("answer", "code", "retryable"),
    [
        (httpx.Response(200, content=b"<html>not json</html>"), "exchange.protocol", False),
        (httpx.Response(200, json=[1, 2]), "exchange.protocol", False),
        (httpx.Response(302, headers={"Location": "https://elsewhere.invalid/"}), "exchange.protocol", False),
        (httpx.Response(404, json={"message": "no"}), "exchange.protocol", False),
        (httpx.Response(403), "exchange.auth", False),
        (httpx.Response(429, headers={"Retry-After": "9"}), "exchange.rate_limited", True),
        (httpx.Response(504), "exchange.unavailable", True),
    ],
)
def test_answers_map_to_stable_codes(answer, code, retryable):
    err = code_of(http_answering(lambda request: answer))
    assert (err.code, err.retryable) == (code, retryable)


def test_a_body_over_the_limit_is_refused_whether_declared_or_streamed():
    big = b'{"x": "' + b"a" * 5000 + b'"}'
    assert code_of(http_answering(lambda r: httpx.Response(200, content=big), max_body_bytes=1000)).code == (
        "exchange.protocol"
    )

    def streamed(request):  # no Content-Length: counted while read
        return httpx.Response(200, content=iter([big[:800], big[800:]]))

    assert code_of(http_answering(streamed, max_body_bytes=1000)).code == "exchange.protocol"


def test_network_failures_are_unavailable_and_never_show_a_secret():
    def refuse(request):
        raise httpx.ConnectError(f"cannot connect to {request.url}")

    err = code_of(http_answering(refuse, secrets=("app|s3cret-token",)))
    assert err.code == "exchange.unavailable" and err.retryable

    def leak(request):
        raise httpx.ConnectError("failed GET https://x.invalid/?access_token=app|s3cret-token")

    err = code_of(http_answering(leak, secrets=("app|s3cret-token",)))
    assert "s3cret" not in err.message and "***" in err.message


def test_a_redirect_is_never_followed():
    seen = []

    def answer(request):
        seen.append(request.url.host)
        return httpx.Response(302, headers={"Location": "https://elsewhere.invalid/"})

    err = code_of(http_answering(answer))
    assert err.code == "exchange.protocol" and "redirect" in err.message and seen == ["stopncii.invalid"]


URL_SETTINGS = {
    "stopncii": ("base_url", {}),
    "tat": ("base_url", {}),
    "threatexchange": ("base_url", {"privacy_groups": [1]}),
    "ncmec": ("base_url", {}),
    "peer": ("url", {"bank": "b", "public_key": "ed25519:" + "A" * 43 + "="}),
}


@pytest.mark.parametrize("type_name", sorted(URL_SETTINGS))
@pytest.mark.parametrize(
    "url",
    ["http://hashes.example.org/v1", "https://169.254.169.254/latest", "https://10.0.0.7/", "ftp://example.org/"],
)
def test_every_client_refuses_cleartext_and_internal_urls(type_name, url):
    field, others = URL_SETTINGS[type_name]
    model = registry.get(type_name).settings_model
    with pytest.raises(ValueError, match=field):  # refused, naming the field
        model(**{field: url, **others})
    assert getattr(model(**{field: "http://127.0.0.1:8080/x", **others}), field) is not None  # a local stand-in
    assert getattr(model(**{field: "https://hashes.example.org/v1", **others}), field) is not None


def test_a_stored_cleartext_url_is_refused_when_the_client_connects():
    ex = StopNCIIExchange(
        StopNCIISettings.model_construct(base_url="http://hashes.example.org/v1"),
        StopNCIICredentials(subscription_key="s", fetch_function_key="f"),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
    )
    with pytest.raises(ExchangeError) as err:
        ex.check()
    assert err.value.code == "exchange.forbidden_url"
