"""The stand-in itself: raw requests, malformed input, expiry, faults. It must answer, never crash."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from safehold.reporting.cybertipline.builder import file_details_xml, report_xml
from safehold.reporting.cybertipline.client import parse_answer
from safehold.reporting.cybertipline.standin import EXPIRE_IDLE, EXPIRE_OPEN, StandIn

from .helpers import full_file_details, minimal_report

AUTH = ("esp", "s3cret-Pa55")
XML = {"Content-Type": "text/xml; charset=utf-8"}


@pytest.fixture
def http(standin):
    with httpx.Client(base_url=standin.url + "/", auth=AUTH, timeout=5) as c:
        yield c


def code(response: httpx.Response) -> int:
    answer = parse_answer(response.content)
    assert answer is not None, response.text
    return answer.code


def submit(http) -> str:
    r = http.post("submit", content=report_xml(minimal_report()), headers=XML)
    assert (r.status_code, code(r)) == (200, 0)
    return parse_answer(r.content).report_id


def raw(standin, data: bytes) -> bytes:
    """Send bytes on a socket; the answer (until the server closes)."""
    host, port = urlsplit(standin.url).hostname, urlsplit(standin.url).port
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_authentication(standin, http):
    for auth in (None, ("esp", "wrong"), ("other", "s3cret-Pa55")):
        r = httpx.get(standin.url + "/status", auth=auth)
        assert (r.status_code, code(r)) == (401, 2000)
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = httpx.get(standin.url + "/status", headers={"Authorization": "Basic !!!not-base64"})
    assert (r.status_code, code(r)) == (401, 2000)
    r = http.get("status")
    assert (r.status_code, code(r), parse_answer(r.content).description) == (200, 0, "Remote User : esp")


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({"Content-Type": "application/json"}, b"{}", "Content-Type"),
        (XML, b"<report>", "well-formed"),
        (XML, b"\xff\xfe garbage", "well-formed"),
        (XML, b'<!DOCTYPE report [<!ENTITY x SYSTEM "file:///etc/passwd">]><report>&x;</report>', "DOCTYPE"),
        (XML, b"<fileDetails><reportId>1</reportId><fileId>x</fileId></fileDetails>", "<report>"),
        (XML, b"<report><incidentSummary/></report>", "incidentType"),
    ],
)
def test_submit_refuses_bad_documents(standin, http, headers, body, why):
    r = http.post("submit", content=body, headers=headers)
    assert (r.status_code, code(r)) == (400, 4100)
    assert why in parse_answer(r.content).description
    assert standin.reports == {}


def test_fileinfo_checks_report_file_and_schema(standin, http):
    report_id = submit(http)
    r = http.post("upload", data={"id": report_id}, files={"file": ("a.jpg", b"abc")})
    file_id = parse_answer(r.content).file_id
    details = file_details_xml(full_file_details(report_id=report_id, file_id="nope"))
    r = http.post("fileinfo", content=details, headers=XML)
    assert (code(r), "nope" in parse_answer(r.content).description) == (4100, True)
    r = http.post("fileinfo", content=file_details_xml(full_file_details(report_id="42", file_id=file_id)), headers=XML)
    assert code(r) == 5001
    bad = file_details_xml(full_file_details(report_id=report_id, file_id=file_id)).replace(b"A1", b"Z9")
    assert code(http.post("fileinfo", content=bad, headers=XML)) == 4100
    good = file_details_xml(full_file_details(report_id=report_id, file_id=file_id))
    assert code(http.post("fileinfo", content=good, headers=XML)) == 0
    assert standin.reports[report_id].files[file_id][3] == good


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"data": {"id": "1"}}, "multipart"),  # form-encoded, not multipart
        ({"files": {"file": ("a", b"x")}}, "id and file"),
        ({"data": {"id": "1"}, "files": {"other": ("a", b"x")}}, "id and file"),
        ({"content": b"--x\r\nnonsense", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}, "malformed"),
        ({"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}}, "boundary"),
    ],
)
def test_upload_refuses_malformed_forms(http, kwargs, why):
    r = http.post("upload", **kwargs)
    assert (r.status_code, code(r)) == (400, 4100)
    assert why in parse_answer(r.content).description


@pytest.mark.parametrize("body", [b"", b"id=1&id=2", b"report=1", b"\xff=1"])
def test_finish_refuses_malformed_forms(http, body):
    r = http.post("finish", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert code(r) == 4100


def test_report_states(standin, http):
    report_id = submit(http)
    form = {"id": report_id}
    assert code(http.post("finish", data=form)) == 0
    for endpoint, kwargs in [
        ("upload", {"data": form, "files": {"file": ("a", b"x")}}),
        ("finish", {"data": form}),
        ("retract", {"data": form}),
    ]:
        assert code(http.post(endpoint, **kwargs)) == 5102
    retracted = submit(http)
    assert code(http.post("retract", data={"id": retracted})) == 0
    assert code(http.post("finish", data={"id": retracted})) == 5001
    assert code(http.post("retract", data={"id": retracted})) == 5001
    assert code(http.post("finish", data={"id": "12345"})) == 5001
    assert [r.id for r in standin.finished()] == [report_id]


def test_unfinished_reports_expire(standin, http, clock):
    idle = submit(http)
    busy = submit(http)
    for _ in range(25):  # a change every 59 minutes keeps it alive … for a day at most
        clock.now += EXPIRE_IDLE - 60
        if clock.now - standin.reports[busy].opened_at > EXPIRE_OPEN:
            break
        assert code(http.post("upload", data={"id": busy}, files={"file": ("a", b"x")})) == 0
    assert code(http.post("finish", data={"id": idle})) == 5001 and standin.reports[idle].expired
    assert code(http.post("finish", data={"id": busy})) == 5001 and standin.reports[busy].expired


def test_finished_reports_do_not_expire(standin, http, clock):
    report_id = submit(http)
    http.post("finish", data={"id": report_id})
    clock.now += EXPIRE_OPEN * 2
    assert code(http.post("finish", data={"id": report_id})) == 5102


def test_paths_methods_and_lengths(standin, http):
    assert http.get("nothing").status_code == 404
    assert httpx.get(standin.url.replace("/ispws", "/other/status"), auth=AUTH).status_code == 404
    assert http.get("submit").status_code == 405
    assert http.post("status").status_code == 405
    assert http.get("xsd").content == standin.schema.text
    chunked = raw(standin, b"POST /ispws/submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.0 411")
    huge = raw(standin, b"POST /ispws/submit HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    assert huge.startswith(b"HTTP/1.0 413")
    assert raw(standin, b"POST /ispws/submit HTTP/1.1\r\nContent-Length: -5\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert b"400" in raw(standin, b"\x00\x01garbage\r\n\r\n")  # the stdlib answers a bad request line
    assert code(http.get("status")) == 0  # still serving


def test_faults(standin, http):
    with pytest.raises(ValueError):
        standin.fail("nowhere", code=1000)
    with pytest.raises(ValueError):
        standin.fail("submit")
    with pytest.raises(ValueError):
        standin.fail("submit", code=1000, after=True)
    standin.fail("status", http_status=503, times=2)
    standin.fail("status", code=3000, http_status=200)
    assert [http.get("status").status_code for _ in range(2)] == [503, 503]
    r = http.get("status")
    assert (r.status_code, code(r)) == (200, 3000)
    assert code(http.get("status")) == 0
    standin.fail("submit", drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("submit", content=report_xml(minimal_report()), headers=XML)
    assert standin.reports == {}
    standin.fail("submit", drop=True, after=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("submit", content=report_xml(minimal_report()), headers=XML)
    assert len(standin.reports) == 1
    assert [c for e, c in standin.requests if e == "submit"] == [-1, -1]


def test_an_internal_failure_answers_1000_and_keeps_serving(standin, http, monkeypatch):
    def boom(*args):
        raise RuntimeError("bug")

    monkeypatch.setattr(standin, "_status", boom)
    r = http.get("status")
    assert (r.status_code, code(r)) == (500, 1000)
    monkeypatch.undo()
    assert code(http.get("status")) == 0


def test_lifecycle():
    s = StandIn()
    with pytest.raises(RuntimeError):
        s.url  # noqa: B018
    with s:
        url = s.url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/ispws")
        with pytest.raises(RuntimeError):
            s.start()
        assert "secret" not in repr(s)
    s.stop()  # stopping twice is harmless
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/status")
