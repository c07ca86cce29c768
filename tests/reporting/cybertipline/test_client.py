"""The client against the stand-in (every endpoint and response code) and against scripted transports."""

from __future__ import annotations

import base64
import hashlib
import logging
import pickle
import socket

import httpx
import pytest

from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.reporting.cybertipline.builder import file_details_xml, report_xml
from safehold.reporting.cybertipline.client import CyberTiplineClient, CyberTiplineError, parse_answer

from .helpers import full_file_details, full_report, minimal_report

PASSWORD = "s3cret-Pa55"


def scripted(handler, **kw) -> tuple[CyberTiplineClient, list[httpx.Request]]:
    """A client whose requests go to ``handler`` (an httpx.MockTransport), recording them."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request):
        seen.append(request)
        return handler(request)

    kw = {"attempts": 3, "backoff": 0.001, **kw}
    return CyberTiplineClient(
        "https://exttest.example/ispws", "esp", PASSWORD, transport=httpx.MockTransport(record), **kw
    ), seen


def ok(**fields) -> httpx.Response:
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    body = f"<reportResponse><responseCode>0</responseCode><responseDescription>Success</responseDescription>{extra}"
    return httpx.Response(200, content=(body + "</reportResponse>").encode())


def failure(fn, *args) -> CyberTiplineError:
    with pytest.raises(CyberTiplineError) as e:
        fn(*args)
    return e.value


def test_the_whole_flow(standin, tipline):
    assert tipline.status() == "Remote User : esp"
    report_id = tipline.submit(report_xml(full_report()))
    data = b"benign test bytes \r\n--boundary-lookalike\r\n" * 50
    up = tipline.upload(report_id, "one.jpg", data)
    assert up.md5 == hashlib.md5(data).hexdigest()
    second = tipline.upload(report_id, "two.jpg", b"\x89PNG")
    details = file_details_xml(full_file_details(report_id=report_id, file_id=up.file_id))
    tipline.fileinfo(details)
    assert sorted(tipline.finish(report_id)) == sorted([up.file_id, second.file_id])
    filed = standin.reports[report_id]
    assert filed.finished and filed.xml == report_xml(full_report())
    assert filed.files[up.file_id] == ("one.jpg", up.md5, len(data), details)
    assert filed.files[second.file_id][3] is None
    assert standin.finished() == [filed]
    assert tipline.xsd() == standin.schema.text


def test_retract(standin, tipline):
    report_id = tipline.submit(report_xml(minimal_report()))
    tipline.retract(report_id)
    assert standin.reports[report_id].retracted and standin.finished() == []
    assert failure(tipline.finish, report_id).code == "cybertip.no_such_report"


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        (2000, "cybertip.auth", False),
        (3000, "cybertip.forbidden", False),
        (4100, "cybertip.rejected", False),
        (5001, "cybertip.no_such_report", False),
        (5102, "cybertip.already_finished", False),
        (1000, "cybertip.server_error", True),
        (4242, "cybertip.error", False),
    ],
)
@pytest.mark.parametrize("endpoint", ["status", "submit", "upload", "fileinfo", "finish", "retract"])
def test_every_response_code_on_every_endpoint(standin, tipline, endpoint, code, kind, retryable):
    report_id = tipline.submit(report_xml(minimal_report()))
    file_id = tipline.upload(report_id, "f.jpg", b"x").file_id
    calls = {
        "status": lambda: tipline.status(),
        "submit": lambda: tipline.submit(report_xml(minimal_report())),
        "upload": lambda: tipline.upload(report_id, "g.jpg", b"y"),
        "fileinfo": lambda: tipline.fileinfo(file_details_xml(full_file_details(report_id=report_id, file_id=file_id))),
        "finish": lambda: tipline.finish(report_id),
        "retract": lambda: tipline.retract(report_id),
    }
    standin.fail(endpoint, code=code, times=3 if retryable else 1)
    e = failure(calls[endpoint])
    assert (e.code, e.response_code, e.retryable, e.ambiguous) == (kind, code, retryable, False)
    assert f"/{endpoint}" in e.message and f"code {code}" in e.message
    attempts = [c for c in standin.requests if c[0] == endpoint and c[1] == code]
    assert len(attempts) == (3 if retryable else 1)  # only 1000 is repeated
    calls[endpoint]()  # and the endpoint works again afterwards


def test_1000_is_retried_until_it_succeeds(standin, tipline):
    standin.fail("submit", code=1000, times=2)
    report_id = tipline.submit(report_xml(minimal_report()))
    assert list(standin.reports) == [report_id]
    assert [c for e, c in standin.requests if e == "submit"] == [1000, 1000, 0]


def test_real_answers_for_stand_in_states(standin, tipline, clock):
    report_id = tipline.submit(report_xml(minimal_report()))
    tipline.finish(report_id)
    assert failure(tipline.upload, report_id, "late.jpg", b"x").response_code == 5102
    assert failure(tipline.retract, report_id).code == "cybertip.already_finished"
    assert failure(tipline.upload, "999", "x.jpg", b"x").response_code == 5001
    stale = tipline.submit(report_xml(minimal_report()))
    clock.now += 3601
    assert failure(tipline.upload, stale, "x.jpg", b"x").code == "cybertip.no_such_report"


def test_an_invalid_document_is_rejected_with_the_reason(standin, tipline):
    xml = report_xml(minimal_report()).replace(b"<incidentDateTime>", b"<incidentDateTime>not a time ")
    e = failure(tipline.submit, xml)
    assert (e.code, e.response_code, e.status) == ("cybertip.rejected", 4100, 422)
    assert "incidentDateTime" in e.message
    assert standin.reports == {}


def test_wrong_password_is_an_auth_error_without_the_password(standin, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "not-the-Right-0ne"
    with CyberTiplineClient(standin.url, "esp", secret, backoff=0.001) as c:
        e = failure(c.status)
        assert (e.code, e.response_code, e.retryable) == ("cybertip.auth", 2000, False)
        for text in (str(e), repr(e), str(e.to_dict()), repr(c), str(vars(c)), caplog.text):
            assert secret not in text and PASSWORD not in text


def test_basic_auth_content_types_and_fields():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/upload"):
            return ok(reportId=1, fileId="f1", hash="abc")
        if request.url.path.endswith("/finish"):
            return httpx.Response(
                200,
                content=b"<reportDoneResponse><responseCode>0</responseCode>"
                b"<reportId>1</reportId><files><fileId>f1</fileId></files></reportDoneResponse>",
            )
        return ok(reportId=1)

    c, seen = scripted(answer)
    assert c.submit(b"<report/>") == "1"
    assert c.upload("1", "a.jpg", b"data").file_id == "f1"
    assert c.finish("1") == ["f1"]
    submit, upload, finish = seen
    expected = "Basic " + base64.b64encode(f"esp:{PASSWORD}".encode()).decode()
    assert all(r.headers["Authorization"] == expected for r in seen)
    assert str(submit.url) == "https://exttest.example/ispws/submit" and submit.method == "POST"
    assert submit.headers["Content-Type"] == "text/xml; charset=utf-8" and submit.content == b"<report/>"
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="id"\r\n\r\n1\r\n' in upload.content and b'filename="a.jpg"' in upload.content
    assert finish.headers["Content-Type"] == "application/x-www-form-urlencoded" and finish.content == b"id=1"


def test_a_dropped_connection_is_ambiguous_and_not_repeated(standin, tipline):
    standin.fail("submit", drop=True)  # before acting
    e = failure(tipline.submit, report_xml(minimal_report()))
    assert (e.code, e.ambiguous, e.response_code) == ("cybertip.unavailable", True, None)
    assert standin.reports == {}
    standin.fail("submit", drop=True, after=True)  # acted, answer lost
    assert failure(tipline.submit, report_xml(minimal_report())).ambiguous
    assert len(standin.reports) == 1  # one request: nothing repeated
    [report_id] = standin.reports
    standin.fail("finish", drop=True, after=True)
    assert failure(tipline.finish, report_id).ambiguous
    assert failure(tipline.finish, report_id).response_code == 5102  # so the first one went through


def test_status_is_repeated_after_a_drop(standin, tipline):
    standin.fail("status", drop=True, times=2)
    assert tipline.status() == "Remote User : esp"


def test_no_connection_is_retried_and_not_ambiguous():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    with CyberTiplineClient(f"http://127.0.0.1:{port}/ispws", "esp", PASSWORD, attempts=2, backoff=0.001) as c:
        e = failure(c.submit, b"<report/>")
    assert (e.code, e.retryable, e.ambiguous) == ("cybertip.unavailable", True, False)
    assert PASSWORD not in str(e)


@pytest.mark.parametrize(
    ("status", "retried", "ambiguous"), [(502, True, False), (503, True, False), (500, False, True), (504, False, True)]
)
def test_gateway_answers(status, retried, ambiguous):
    c, seen = scripted(lambda r: httpx.Response(status, text="<html>gateway</html>"))
    e = failure(c.submit, b"<report/>")
    assert (e.code, e.ambiguous) == ("cybertip.unavailable", ambiguous)
    assert len(seen) == (3 if retried else 1)


def test_bare_401_and_403():
    c, _ = scripted(lambda r: httpx.Response(401, text="Unauthorized"))
    assert failure(c.status).code == "cybertip.auth"
    c, _ = scripted(lambda r: httpx.Response(403, text="Forbidden"))
    assert failure(c.status).code == "cybertip.forbidden"


def test_a_read_timeout_after_sending_is_ambiguous():
    def timeout(request):
        raise httpx.ReadTimeout("timed out", request=request)

    c, seen = scripted(timeout)
    e = failure(c.upload, "1", "a.jpg", b"x")
    assert (e.code, e.ambiguous, len(seen)) == ("cybertip.unavailable", True, 1)
    c, seen = scripted(timeout)
    assert not failure(c.status).ambiguous and len(seen) == 3  # a GET may be repeated


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<html><body>Maintenance</body></html>",
        b"<reportResponse><responseCode>zero</responseCode></reportResponse>",
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<reportResponse><responseCode>0</responseCode><responseDescription>&b;</responseDescription>"
        b"</reportResponse>",
    ],
)
def test_unusable_answers_are_bad_responses(body):
    assert parse_answer(body) is None
    c, seen = scripted(lambda r: httpx.Response(200, content=body))
    e = failure(c.submit, b"<report/>")
    assert (e.code, e.ambiguous, len(seen)) == ("cybertip.bad_response", True, 1)


def test_success_without_an_id_is_a_bad_response():
    c, _ = scripted(lambda r: ok())
    assert failure(c.submit, b"<report/>").code == "cybertip.bad_response"
    assert failure(c.upload, "1", "a", b"x").code == "cybertip.bad_response"


def test_answers_are_capped():
    c, _ = scripted(lambda r: httpx.Response(200, content=b"<reportResponse>" + b" " * (2 * 1024 * 1024)))
    e = failure(c.submit, b"<report/>")
    assert e.code == "cybertip.bad_response" and "larger than" in e.message


def test_from_settings(tmp_path):
    s = Settings(home=tmp_path)
    with pytest.raises(SafeholdError) as e:
        CyberTiplineClient.from_settings(s)
    assert (e.value.code, e.value.status) == ("cybertip.not_configured", 409)
    s.cybertip_username, s.cybertip_password, s.cybertip_backoff_seconds = "esp", PASSWORD, 30.0
    with CyberTiplineClient.from_settings(s) as c:
        assert c.base_url == "https://exttest.cybertip.org/ispws" and c.backoff == 1.0
        assert PASSWORD not in repr(c)


def test_credentials_in_the_url_are_refused():
    with pytest.raises(SafeholdError) as e:
        CyberTiplineClient(f"https://esp:{PASSWORD}@exttest.example/ispws", "esp", PASSWORD)
    assert e.value.code == "cybertip.not_configured" and PASSWORD not in e.value.message


def test_errors_survive_pickling():
    e = CyberTiplineError("cybertip.server_error", "m", response_code=1000, retryable=True)
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.code, back.response_code, back.retryable, back.ambiguous) == (
        CyberTiplineError,
        "cybertip.server_error",
        1000,
        True,
        False,
    )
