"""A local stand-in for NCMEC's CyberTipline ESP Reporting API, to rehearse filing without reporting anything.

Used by the tests and the benchmark, and shipped for operators (``safehold report stand-in``)::

    standin = StandIn(username="esp", password="secret")
    url = standin.start("127.0.0.1", 8090)     # e.g. http://127.0.0.1:8090/ispws, served from a thread
    ...                                        # point SAFEHOLD_CYBERTIP_URL/_USERNAME/_PASSWORD at it
    standin.stop()

It serves ``/ispws/{submit,upload,fileinfo,finish,retract,status,xsd}`` like the real API:

* HTTP Basic authentication (``2000``, HTTP 401 with ``WWW-Authenticate`` when missing or wrong);
* ``/submit`` and ``/fileinfo`` bodies must be ``text/xml`` (or ``application/xml``) and valid against the schema,
  else ``4100`` with the schema's first errors in ``responseDescription``; ``/upload`` takes multipart form data
  (fields ``id`` and ``file``), ``/finish`` and ``/retract`` a form-encoded ``id``;
* an unknown, retracted or expired report answers ``5001``; a finished one ``5102`` (upload, fileinfo, finish,
  retract). Unfinished reports expire like NCMEC's: 24 h after opening or 1 h after their last change, by ``clock``;
* malformed requests (no length, too large, bad multipart, bad form, not XML, a DOCTYPE) answer ``4100`` with
  HTTP 400; a failure of its own answers ``1000`` with HTTP 500. It never stops serving because of a request.

HTTP statuses with the codes are this stand-in's choice (0, 5001, 5102: 200; 1000: 500; 2000: 401; 3000: 403;
4100: 400): a client must read ``responseCode`` first, as NCMEC's documentation says.

Faults for tests: ``fail("upload", code=1000)`` makes the next upload answer 1000; ``fail(..., http_status=503)``
answers a bare 503; ``fail(..., drop=True)`` closes the connection without an answer and without acting;
``fail(..., drop=True, after=True)`` acts and *then* closes: the "answer lost" case a filer must survive.

State is in memory (``reports``) and lost on stop. It binds to 127.0.0.1 by default; it is a rehearsal tool, not
a server to expose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from lxml import etree

from safehold.reporting.cybertipline.client import RESPONSE_CODES
from safehold.reporting.cybertipline.schema import Schema, parse_untrusted

log = logging.getLogger(__name__)

PREFIX = "/ispws/"
ENDPOINTS = ("submit", "upload", "fileinfo", "finish", "retract", "status", "xsd")
GET_ENDPOINTS = ("status", "xsd")
EXPIRE_IDLE = 3600.0  # an unfinished report is deleted an hour after its last change …
EXPIRE_OPEN = 24 * 3600.0  # … or a day after it was opened
MAX_XML = 4 * 1024 * 1024
MAX_UPLOAD = 64 * 1024 * 1024
HTTP_STATUS = {0: 200, 1000: 500, 2000: 401, 3000: 403, 4100: 400}
XML_TYPES = ("text/xml", "application/xml")


@dataclass
class StandInReport:
    """A report as the stand-in holds it. ``files``: file id -> (filename, md5, size, fileDetails XML or None)."""

    id: str
    xml: bytes
    opened_at: float
    changed_at: float
    files: dict[str, tuple[str, str, int, bytes | None]] = field(default_factory=dict)
    finished: bool = False
    retracted: bool = False
    expired: bool = False


@dataclass
class _Fault:
    code: int | None
    http_status: int | None
    drop: bool
    after: bool
    times: int


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "text/xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _Refused(Exception):
    """A request answered with a CyberTipline error code (raised from deep in the handling)."""

    def __init__(self, code: int, description: str | None = None):
        super().__init__(description)
        self.code = code
        self.description = description or RESPONSE_CODES.get(code, "Error")


class StandIn:
    """The stand-in server. ``clock`` (seconds, like ``time.time``) decides expiry; tests move it forward."""

    def __init__(
        self,
        username: str = "esp",
        password: str = "secret",
        schema: Schema | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.username = username
        self._password = password
        self.schema = schema or Schema.load()
        self.clock = clock
        self.reports: dict[str, StandInReport] = {}
        self.requests: list[tuple[str, int]] = []  # (endpoint, responseCode or HTTP status) of each answer
        self._faults: dict[str, list[_Fault]] = {}
        # Ids start from the time, so a restarted stand-in does not hand out an id a filer still remembers.
        self._ids = itertools.count(int(time.time()) % 1_000_000 * 100 + 1)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (``http://host:port/ispws``)."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="cybertip-standin", daemon=True
        )  # a short poll interval: stop() returns quickly
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{PREFIX.rstrip('/')}"

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> StandIn:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"StandIn(username={self.username!r}, reports={len(self.reports)})"

    # -------------------------------------------------------------------------------------------------- tests

    def fail(
        self,
        endpoint: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        drop: bool = False,
        after: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``endpoint`` fail: answer ``code`` (with its usual HTTP status, or
        ``http_status``), or a bare ``http_status``, or drop the connection before acting (``drop``) or after
        acting (``drop=True, after=True``)."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}: one of {', '.join(ENDPOINTS)}")
        if not drop and code is None and http_status is None:
            raise ValueError("give code, http_status or drop=True")
        if after and not drop:
            raise ValueError("after=True only goes with drop=True")
        with self._lock:
            self._faults.setdefault(endpoint, []).append(_Fault(code, http_status, drop, after, times))

    def finished(self) -> list[StandInReport]:
        """The reports finished (and not retracted), in the order they were opened."""
        with self._lock:
            return [r for r in self.reports.values() if r.finished and not r.retracted]

    def _fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(endpoint) or []
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault

    # ------------------------------------------------------------------------------------------------ the API

    def handle(self, endpoint: str, headers, body: bytes) -> _Reply:
        """Act on one authenticated-or-not request and build its answer (no faults here)."""
        try:
            self._authenticate(headers.get("Authorization"))
            if endpoint == "xsd":
                return _Reply(200, self.schema.text, "application/xml")
            with self._lock:
                return getattr(self, f"_{endpoint}")(headers, body)
        except _Refused as e:
            status = HTTP_STATUS.get(e.code, 200)
            extra = {"WWW-Authenticate": 'Basic realm="CyberTipline"'} if e.code == 2000 else {}
            return _Reply(status, response(e.code, e.description), headers=extra)

    def _authenticate(self, header: str | None) -> None:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "basic":
            raise _Refused(2000)
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _Refused(2000) from None
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        ok_password = hmac.compare_digest(password.encode(), self._password.encode())
        if not (sep and ok_user and ok_password):
            raise _Refused(2000)

    def _status(self, headers, body: bytes) -> _Reply:
        return _Reply(200, response(0, f"Remote User : {self.username}"))

    def _submit(self, headers, body: bytes) -> _Reply:
        self._document(headers, body, "report")
        now = self.clock()
        report_id = str(next(self._ids))
        self.reports[report_id] = StandInReport(report_id, body, opened_at=now, changed_at=now)
        return _Reply(200, response(0, "Success", report_id=report_id))

    def _upload(self, headers, body: bytes) -> _Reply:
        fields = _multipart(headers.get("Content-Type", ""), body)
        if "id" not in fields or "file" not in fields:
            raise _Refused(4100, "multipart form data needs the fields id and file")
        report = self._open_report(fields["id"][1].decode("utf-8", "replace"))
        filename, data = fields["file"]
        file_id = secrets.token_hex(16)
        md5 = hashlib.md5(data).hexdigest()
        report.files[file_id] = (filename or "file", md5, len(data), None)
        report.changed_at = self.clock()
        return _Reply(200, response(0, "Success", report_id=report.id, file_id=file_id, hash=md5))

    def _fileinfo(self, headers, body: bytes) -> _Reply:
        root = self._document(headers, body, "fileDetails")
        report = self._open_report(root.findtext("reportId") or "")
        file_id = (root.findtext("fileId") or "").strip()
        if file_id not in report.files:
            raise _Refused(4100, f"fileId {file_id} is not a file of report {report.id}")
        name, md5, size, _ = report.files[file_id]
        report.files[file_id] = (name, md5, size, body)
        report.changed_at = self.clock()
        return _Reply(200, response(0, "Success", report_id=report.id, file_id=file_id))

    def _finish(self, headers, body: bytes) -> _Reply:
        report = self._open_report(_form_id(headers, body))
        report.finished = True
        report.changed_at = self.clock()
        done = etree.Element("reportDoneResponse")
        etree.SubElement(done, "responseCode").text = "0"
        etree.SubElement(done, "reportId").text = report.id
        files = etree.SubElement(done, "files")
        for file_id in report.files:
            etree.SubElement(files, "fileId").text = file_id
        return _Reply(200, etree.tostring(done, xml_declaration=True, encoding="UTF-8"))

    def _retract(self, headers, body: bytes) -> _Reply:
        report = self._open_report(_form_id(headers, body))
        report.retracted = True
        report.changed_at = self.clock()
        return _Reply(200, response(0, "Success", report_id=report.id))

    def _document(self, headers, body: bytes, root_tag: str):
        """The request's XML document, checked against the schema (4100 with the errors otherwise)."""
        content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in XML_TYPES:
            raise _Refused(4100, f"expected Content-Type text/xml, not {content_type or 'none'}")
        try:
            root = parse_untrusted(body).getroot()
        except ValueError as e:
            raise _Refused(4100, str(e)) from None
        if root.tag != root_tag:
            raise _Refused(4100, f"expected a <{root_tag}> document, not <{root.tag}>")
        if errors := self.schema.errors(body):
            raise _Refused(4100, "; ".join(errors[:5]))
        return root

    def _open_report(self, report_id: str) -> StandInReport:
        """The report, if it can still change: 5001 when unknown, retracted or expired, 5102 when finished."""
        report = self.reports.get(report_id.strip())
        if report is None or report.retracted:
            raise _Refused(5001)
        if report.finished:
            raise _Refused(5102)
        now = self.clock()
        if report.expired or now - report.changed_at > EXPIRE_IDLE or now - report.opened_at > EXPIRE_OPEN:
            report.expired = True
            raise _Refused(5001)
        return report


def response(code: int, description: str | None = None, *, report_id=None, file_id=None, hash=None) -> bytes:
    """A ``<reportResponse>`` document."""
    root = etree.Element("reportResponse")
    etree.SubElement(root, "responseCode").text = str(code)
    etree.SubElement(root, "responseDescription").text = description or RESPONSE_CODES.get(code, "Error")
    for tag, value in (("reportId", report_id), ("fileId", file_id), ("hash", hash)):
        if value is not None:
            etree.SubElement(root, tag).text = str(value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _form_id(headers, body: bytes) -> str:
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _Refused(4100, "expected a form-encoded id")
    try:
        values = parse_qs(body.decode("ascii"), strict_parsing=True).get("id") or []
    except (UnicodeDecodeError, ValueError):
        values = []
    if len(values) != 1:
        raise _Refused(4100, "expected one form field id")
    return values[0]


def _param(header: str, name: str, value: str) -> str | None:
    msg = Message()
    msg[header] = value
    found = msg.get_param(name, header=header)
    return found if isinstance(found, str) else None


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``multipart/form-data`` fields: name -> (filename, bytes). 4100 when it is not well-formed."""
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise _Refused(4100, "expected multipart/form-data")
    boundary = _param("Content-Type", "boundary", content_type)
    if not boundary:
        raise _Refused(4100, "multipart/form-data without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    parts = body.split(delimiter)
    if len(parts) < 3 or not parts[-1].startswith(b"--"):
        raise _Refused(4100, "malformed multipart body")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in parts[1:-1]:
        if not part.startswith(b"\r\n") or not part.endswith(b"\r\n"):
            raise _Refused(4100, "malformed multipart body")
        head, sep, data = part[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise _Refused(4100, "malformed multipart part")
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                disposition = value.strip()
        name = _param("Content-Disposition", "name", disposition)
        if not name:
            raise _Refused(4100, "multipart part without a name")
        fields[name] = (_param("Content-Disposition", "filename", disposition), data)
    return fields


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "CyberTiplineStandIn/1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            try:
                self._dispatch(method)
            except OSError:  # the client went away
                self.close_connection = True
            except Exception:  # a bug here must not stop the server: answer 1000 like a failing API would
                log.exception("CyberTipline stand-in: request failed")
                try:
                    self._send(_Reply(500, response(1000)))
                except OSError:
                    self.close_connection = True

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            endpoint = path[len(PREFIX) :] if path.startswith(PREFIX) else None
            if endpoint not in ENDPOINTS:
                self._send(_Reply(404, b"not found\n", "text/plain"))
                return
            if (method == "GET") != (endpoint in GET_ENDPOINTS):
                self._send(_Reply(405, b"method not allowed\n", "text/plain"))
                return
            body = self._body(endpoint)
            if body is None:
                return
            fault = standin._fault(endpoint)
            if fault and fault.drop and not fault.after:
                self._drop(endpoint)
                return
            if fault and not fault.drop:
                if fault.code is None:
                    reply = _Reply(fault.http_status or 500, b"injected failure\n", "text/plain")
                else:
                    reply = _Reply(fault.http_status or HTTP_STATUS.get(fault.code, 200), response(fault.code))
                self._send(reply, endpoint)
                return
            reply = standin.handle(endpoint, self.headers, body)
            if fault:  # drop after acting
                self._drop(endpoint)
                return
            self._send(reply, endpoint)

        def _body(self, endpoint: str) -> bytes | None:
            if self.headers.get("Transfer-Encoding"):
                self._send(_Reply(411, response(4100, "send a Content-Length"), headers={"Connection": "close"}))
                return None
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            limit = MAX_UPLOAD if endpoint == "upload" else MAX_XML
            if not 0 <= length <= limit:
                self._send(_Reply(413 if length > limit else 400, response(4100, "bad or too large Content-Length")))
                return None
            return self.rfile.read(length) if length else b""

        def _drop(self, endpoint: str) -> None:
            standin.requests.append((endpoint, -1))
            self.close_connection = True

        def _send(self, reply: _Reply, endpoint: str | None = None) -> None:
            if endpoint:
                code = _code_of(reply)
                standin.requests.append((endpoint, code))
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args) -> None:  # quiet; the requests list records what happened
            pass

    return Handler


def _code_of(reply: _Reply) -> int:
    if reply.content_type.startswith("text/xml"):
        root = etree.fromstring(reply.body)
        return int(root.findtext("responseCode"))
    return reply.status


__all__ = ["ENDPOINTS", "EXPIRE_IDLE", "EXPIRE_OPEN", "StandIn", "StandInReport", "response"]
