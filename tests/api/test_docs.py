"""/docs is Swagger UI served from the package: nothing on the page, in its start-up script or in its policy
points at another host, so it works without internet and tells no third party who reads it. (It is loaded in
real Chromium with every non-loopback request blocked in tests/web/test_browser.py.)"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from safehold.app import create_app

REFERENCE = re.compile(r'\b(?:src|href|data-spec)="([^"]+)"')


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(background=False))  # no lifespan: the page and its files need no services


def test_the_page_loads_only_from_this_server(client):
    r = client.get("/docs")
    assert r.status_code == 200
    refs = REFERENCE.findall(r.text)
    assert "/openapi.json" in refs and any(ref.endswith(".js") for ref in refs)
    for ref in refs:
        url = urljoin(str(r.url), ref)
        assert urlsplit(url).netloc == "testserver", ref
        assert client.get(url).status_code == 200, ref
    assert not re.search(r"https?://", r.text)
    policy = r.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert not re.search(r"https?:|\*", policy)


def test_the_start_up_script_turns_the_remote_validator_off(client):
    r = client.get("/docs/assets/init.js")
    assert r.headers["content-type"].startswith("text/javascript")
    assert "validatorUrl: null" in r.text and not re.search(r"https?://", r.text)


def test_only_the_named_files_are_served_and_fastapi_defaults_are_off(client):
    assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    for path in ("/docs/assets/favicon.png", "/docs/assets/..%2F__init__.py", "/redoc", "/docs/oauth2-redirect"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "request.not_found"
    assert not any(getattr(route, "path", "") == "/redoc" for route in client.app.routes)
