"""Request ids on every log record of a request, JSON lines, and secrets kept out of the logs."""

from __future__ import annotations

import io
import json
import logging

import pytest

from safehold import logs

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

log = logging.getLogger("safehold.tests.logs")


@pytest.fixture
def json_logs():
    """The root logger writing JSON lines into a buffer for the test, then put back as it was."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    logs.configure(logging.INFO, "json", buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def logging_client(svc):
    """An app with one extra route that logs, in the event loop and in a worker thread."""
    from fastapi.testclient import TestClient

    from safehold.app import create_app

    app = create_app(svc, background=False)

    def noisy(token: str = "") -> dict:
        log.info("serving with Authorization: Bearer %s and cookie safehold_session=abc123", token)
        return {}

    app.add_api_route("/v1/test-noisy", noisy, methods=["GET"])
    with TestClient(app) as c:
        yield c


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@SQLITE
def test_the_request_id_is_echoed_and_on_every_record(logging_client, json_logs):
    r = logging_client.get("/v1/test-noisy", headers={"X-Request-ID": "lb-7f3a.42"})
    assert r.headers["x-request-id"] == "lb-7f3a.42"
    [record] = [line for line in lines(json_logs) if line["logger"] == log.name]
    assert record["request_id"] == "lb-7f3a.42"
    assert record["level"] == "INFO" and record["time"].endswith("+00:00")
    log.info("outside any request")
    assert lines(json_logs)[-1]["request_id"] == "-"


@SQLITE
@pytest.mark.parametrize("given", [None, "", "x" * 129, "bad id with spaces", 'quote"d', "semi;colon", "ü"])
def test_a_missing_or_invalid_id_is_replaced(logging_client, given):
    headers = {} if given is None else {"X-Request-ID": given.encode()}
    r = logging_client.get("/livez", headers=headers)
    rid = r.headers["x-request-id"]
    assert rid != given and logs.REQUEST_ID.fullmatch(rid)
    assert logging_client.get("/livez").headers["x-request-id"] != rid  # each request its own


@SQLITE
def test_refusals_have_an_id_too(logging_client):
    r = logging_client.get("/v1/banks", headers={"X-Request-ID": "refused-1"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "refused-1"


@SQLITE
def test_secrets_never_reach_the_log(logging_client, json_logs, keys):
    token = keys["admin"]["Authorization"].removeprefix("Bearer ")
    logging_client.get("/v1/test-noisy", params={"token": token})
    text = json_logs.getvalue()
    assert token not in text and "abc123" not in text
    assert "Bearer [redacted]" in text and "safehold_session=[redacted]" in text


def test_redact():
    assert logs.redact("key sh_abcd1234_secretpart in text") == "key [redacted] in text"
    assert logs.redact("authorization: bearer xyz.abc") == "authorization: bearer [redacted]"
    assert logs.redact("nothing secret here") == "nothing secret here"


def test_text_stays_the_default(monkeypatch):
    monkeypatch.delenv("SAFEHOLD_LOG_FORMAT", raising=False)
    assert logs.log_format() == "text"
    monkeypatch.setenv("SAFEHOLD_LOG_FORMAT", "JSON")
    assert logs.log_format() == "json"
    monkeypatch.setenv("SAFEHOLD_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="SAFEHOLD_LOG_FORMAT"):
        logs.log_format()


def test_text_lines_carry_the_id():
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(logs.RequestContext())
    handler.setFormatter(logs.TextLines())
    log.addHandler(handler)
    token = logs.request_id.set("abc-1")
    try:
        log.warning("hello")
    finally:
        logs.request_id.reset(token)
    log.warning("outside")
    try:
        raise ValueError("refused key sh_abcd1234_secretpart")
    except ValueError:
        log.exception("failed")
    log.removeHandler(handler)
    text = buffer.getvalue()
    assert text.startswith("WARNING [abc-1] hello\nWARNING outside\nERROR failed\nTraceback")
    assert "sh_abcd1234" not in text and "ValueError: refused key [redacted]" in text
