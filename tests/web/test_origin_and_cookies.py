"""The console's Origin check compares scheme, host and port (with SAFEHOLD_PUBLIC_URL when set, else the request's
own), and its cookies are Secure when the console is reached over https."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import Console

pytestmark = [
    pytest.mark.usefixtures("staff_users"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def _console(app, base_url="http://testserver", user="rita"):
    c = Console(TestClient(app, base_url=base_url))
    c.login(user)
    return c


def _post(c, origin):
    return c.post("/console/me/break", headers={"Origin": origin}).status_code


def test_origin_must_match_the_requests_scheme_host_and_port(app):
    c = _console(app)
    assert _post(c, "http://testserver") == 303
    assert _post(c, "http://testserver:80") == 303
    assert _post(c, "https://testserver") == 403  # same host, other scheme: old code let it through
    assert _post(c, "http://testserver:8080") == 403
    assert _post(c, "http://evil.example") == 403
    assert _post(c, "null") == 403


def test_origin_is_compared_with_the_public_url_when_set(app, svc):
    svc.settings.public_url = "https://console.example.org"
    c = _console(app, base_url="https://console.example.org")
    assert _post(c, "https://console.example.org") == 303
    assert _post(c, "https://console.example.org:443") == 303
    assert _post(c, "http://console.example.org") == 403
    assert _post(c, "https://console.example.org:8443") == 403
    # Behind a proxy the app may see another Host: the public URL is what counts.
    c2 = _console(app, base_url="https://console.example.org")
    assert (
        c2.post(
            "/console/me/break", headers={"Origin": "https://console.example.org", "Host": "10.0.0.5:8000"}
        ).status_code
        == 303
    )


def _session_cookie(r) -> str:
    return [h for h in r.headers.get_list("set-cookie") if h.startswith("safehold_session=")][0].lower()


def test_cookies_are_secure_when_the_public_url_is_https(app, svc):
    svc.settings.public_url = "https://console.example.org"
    c = Console(TestClient(app, base_url="https://console.example.org"))
    assert "secure" in c.client.get("/login").headers["set-cookie"].lower()
    assert "secure" in _session_cookie(c.login("rita"))


def test_cookies_follow_the_request_scheme_without_a_public_url(app):
    plain = Console(TestClient(app))
    assert "secure" not in _session_cookie(plain.login("rita"))
    tls = Console(TestClient(app, base_url="https://testserver"))
    assert "secure" in _session_cookie(tls.login("rita"))


def test_cookie_secure_setting_overrides(app, svc):
    svc.settings.public_url = "https://console.example.org"
    svc.settings.cookie_secure = False
    c = Console(TestClient(app, base_url="https://console.example.org"))
    assert "secure" not in _session_cookie(c.login("rita"))
    svc.settings.public_url, svc.settings.cookie_secure = None, True
    assert "secure" in TestClient(app).get("/login").headers["set-cookie"].lower()


def test_public_url_must_be_an_absolute_http_url(tmp_path):
    from pydantic import ValidationError

    from safehold.config import Settings

    assert Settings(home=tmp_path, public_url="https://x.example:8443/").public_origin == ("https", "x.example", 8443)
    for bad in ("console.example.org", "ftp://x.example", "https://x.example:99999"):
        with pytest.raises(ValidationError):
            Settings(home=tmp_path, public_url=bad)
