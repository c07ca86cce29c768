"""One error shape and wording everywhere: malformed JSON, the key's scheme, unknown paths, validation messages,
and a documented code for every code the source raises."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from safehold.app import HTTP_CODES

SRC = Path(__file__).resolve().parents[2] / "src" / "safehold"
API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"

#: Every route that takes a JSON body a platform sends (the search routes go through the ASGI fast path first).
JSON_ROUTES = (
    "/v1/scan",
    "/v1/scan/batch",
    "/v1/events",
    "/v1/text/check",
    "/v1/conversations/chat-1/messages",
    "/v1/search/check",
    "/v1/search/suggestions/filter",
)


@pytest.mark.parametrize("body", [b'{"signal_type": "md5",,}', b"{not json", b"\xff\xfe"])
def test_malformed_json_is_one_code_status_and_wording_on_every_route(client, keys, body):
    headers = {**keys["admin"], "Content-Type": "application/json", "Idempotency-Key": "k"}
    answers = {url: client.post(url, content=body, headers=headers) for url in JSON_ROUTES}
    for url, r in answers.items():
        assert r.status_code == 400, (url, r.text)
        error = r.json()["error"]
        assert error["code"] == "request.invalid_json", url
        assert re.fullmatch(r"The request body is not valid JSON: .+ at character \d+\.", error["message"]), url
    assert len({r.text for r in answers.values()}) == 1  # word for word the same


def test_an_integer_too_long_to_convert_is_a_422_not_a_500(client, keys):
    """Python refuses to convert integer literals of more than 4,300 digits with a plain ValueError; the body
    checks run before authentication, so every caller could otherwise turn it into a 500."""
    body = b'{"id": ' + b"9" * 5000 + b"}"
    for headers in ({}, keys["admin"]):
        for url in JSON_ROUTES:
            r = client.post(url, content=body, headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 422, (url, r.text)
            assert r.json()["error"]["code"] == "request.number_out_of_range", url


def test_a_key_without_the_bearer_scheme_says_so(client, keys):
    token = keys["platform"]["Authorization"].removeprefix("Bearer ")
    for header in (token, f"Token {token}", "Bearer"):
        for url in ("/v1/scan", "/v1/search/check"):  # the FastAPI routes and the search fast path
            r = client.post(url, json={"query": "x"}, headers={"Authorization": header})
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", (header, url)
            assert r.json()["error"] == {
                "code": "auth.bad_scheme",
                "message": "Send the key as `Authorization: Bearer <key>`.",
            }
    r = client.post("/v1/scan", json={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth.missing_key"


def test_unknown_pages_are_html_for_people_and_json_for_programs(client):
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path, headers in (("/nope", browser), ("/cases/abc", browser), ("/console/nope", {})):
        r = client.get(path, headers=headers)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "request.not_found" in r.text and "Content-Security-Policy" in r.headers
    for path, headers in (("/v1/nope", browser), ("/nope", {"Accept": "application/json"})):
        r = client.get(path, headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "request.not_found", path
    r = client.delete("/v1/health")
    assert r.status_code == 405 and r.json()["error"]["code"] == "request.method_not_allowed"


def test_validation_messages_read_right_for_any_noun(client, keys):
    platform = keys["platform"]
    r = client.post("/v1/conversations/chat-1/messages", json={"messages": [{"author": "a"}]}, headers=platform)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("Some fields of the messages are not valid")
    r = client.post("/v1/events", json={"type": "content"}, headers={**platform, "Idempotency-Key": "k"})
    assert r.json()["error"]["message"].startswith("Some fields of the event are not valid")
    r = client.get("/v1/conversations", params={"limit": 0}, headers=keys["reviewer"])
    error = r.json()["error"]
    assert r.status_code == 422 and error["message"].startswith(
        "Some fields of the request are not valid (query.limit:"
    )
    assert error["detail"]["errors"][0]["loc"] == ["query", "limit"]


def raised_codes() -> tuple[set[str], set[str]]:
    """Codes given as literals to SafeholdError (or a subclass) anywhere in the source, and the f-string codes
    as regular expressions (``f"{prefix}.missing_idempotency_key"``)."""
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))]
    errors = {"SafeholdError"}
    for tree in trees:  # subclasses, wherever they are defined
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) in errors for b in node.bases):
                errors.add(node.name)
    codes, patterns = set(HTTP_CODES.values()) | {"server.error"}, set()
    for tree in trees:
        for node in ast.walk(tree):
            name = getattr(node, "func", None)
            if not (isinstance(node, ast.Call) and getattr(name, "id", getattr(name, "attr", None)) in errors):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                codes.add(first.value)
            elif isinstance(first, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z_]+" for v in first.values]
                patterns.add("".join(parts))
    return codes, patterns


def test_every_error_code_raised_is_documented():
    documented = set(re.findall(r"`([a-z0-9_]+\.[a-z0-9_.]+)`", API_DOC.read_text(encoding="utf-8")))
    codes, patterns = raised_codes()
    assert len(codes) > 150 and patterns  # the scan found the codes (a broken scan would pass vacuously)
    assert sorted(codes - documented) == []
    assert [p for p in patterns if not any(re.fullmatch(p, d) for d in documented)] == []


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("orig", "code", "retry_after"),
    [
        # A PostgreSQL restart or failover is transient: the client is told to retry soon (bench/faults.py), not
        # that Safehold has a bug.
        (_DriverError("connection refused\nis the server running?"), "store.unavailable", "1"),
        (_DriverError("database is locked"), "store.unavailable", "1"),
        # A full disk or a read-only store does not pass by itself: retry much later (and the log says error).
        (_DriverError("could not extend file: No space left on device", "53100"), "store.unwritable", "60"),
        (_DriverError("cannot execute INSERT in a read-only transaction", "25006"), "store.unwritable", "60"),
        (_DriverError("database or disk is full"), "store.unwritable", "60"),
        (_DriverError("attempt to write a readonly database"), "store.unwritable", "60"),
    ],
    ids=["gone", "locked", "pg-full", "pg-read-only", "sqlite-full", "sqlite-read-only"],
)
def test_a_database_error_answers_503_saying_whether_it_passes(svc, keys, monkeypatch, orig, code, retry_after):
    from fastapi.testclient import TestClient
    from sqlalchemy.exc import OperationalError

    from safehold.app import create_app

    def failing():
        raise OperationalError("SELECT 1", {}, orig)

    monkeypatch.setattr(svc.banks, "list", failing)
    with TestClient(create_app(svc, background=False), raise_server_exceptions=False) as client:
        r = client.get("/v1/banks", headers=keys["admin"])
    assert r.status_code == 503 and r.headers["Retry-After"] == retry_after
    assert r.json()["error"]["code"] == code
