"""A client for NCMEC's CyberTipline ESP Reporting API (``/submit``, ``/upload``, ``/fileinfo``, ``/finish``,
``/retract``, ``/status``, ``/xsd``), with HTTP Basic authentication.

Filing must never produce a second report or a second copy of a file, so the client repeats a request only when
repeating cannot duplicate anything: the connection could not be made (nothing was sent), the API answered
``1000`` (server error), or a gateway answered 502/503 (the request never reached the application). Everything
else is raised at once. A failure after the request was sent with no answer (read timeout, connection dropped,
a 500 or 504 without a CyberTipline answer) is *ambiguous*: NCMEC may have acted on it. It is raised with
``ambiguous=True`` and the caller, which knows what it has persisted, decides (see ``reporting.filing``).

Keep-alive is off: a pooled connection the server has quietly closed fails the next request as "disconnected
without a response", which would be indistinguishable from a real lost answer. One connection per request costs
little at reporting volumes.

Answers are parsed with defusedxml (no DTD, no entities) and read up to 1 MiB. The password is held only by the
HTTP auth object: it is not in ``repr``, in error messages or in logs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException

from safehold.errors import SafeholdError

log = logging.getLogger(__name__)

MAX_RESPONSE = 1024 * 1024

RESPONSE_CODES = {
    0: "Success",
    1000: "Server error",
    2000: "Authentication required",
    3000: "Not authorized",
    4100: "Validation failed",
    5001: "Report does not exist",
    5102: "Report already finished",
}
SERVER_ERROR, AUTH_REQUIRED, NOT_AUTHORIZED, VALIDATION_FAILED = 1000, 2000, 3000, 4100
NO_SUCH_REPORT, ALREADY_FINISHED = 5001, 5102

# response code -> (error code, HTTP status our API answers with)
_ERRORS = {
    SERVER_ERROR: ("cybertip.server_error", 502),
    AUTH_REQUIRED: ("cybertip.auth", 502),
    NOT_AUTHORIZED: ("cybertip.forbidden", 502),
    VALIDATION_FAILED: ("cybertip.rejected", 422),
    NO_SUCH_REPORT: ("cybertip.no_such_report", 409),
    ALREADY_FINISHED: ("cybertip.already_finished", 409),
}
_GATEWAY_NOT_SENT = {502, 503}  # the gateway did not pass the request on: safe to repeat


class CyberTiplineError(SafeholdError):
    """A failed CyberTipline request. ``response_code``: the API's code when it answered with one;
    ``retryable``: trying again later is sensible; ``ambiguous``: the request may have been carried out."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        response_code: int | None = None,
        retryable: bool = False,
        ambiguous: bool = False,
        status: int = 502,
    ):
        detail = {"response_code": response_code, "retryable": retryable, "ambiguous": ambiguous}
        super().__init__(code, message, status=status, detail=detail)
        self.response_code = response_code
        self.retryable = retryable
        self.ambiguous = ambiguous

    def __reduce__(self):
        return (_restore, (self.code, self.message, self.response_code, self.retryable, self.ambiguous, self.status))

    def __repr__(self) -> str:
        return f"CyberTiplineError({self.code!r}, {self.message!r}, response_code={self.response_code!r})"


def _restore(code, message, response_code, retryable, ambiguous, status):
    return CyberTiplineError(
        code, message, response_code=response_code, retryable=retryable, ambiguous=ambiguous, status=status
    )


@dataclass(frozen=True)
class Upload:
    """What ``/upload`` answered: NCMEC's file id and the MD5 of the bytes it received (compare with yours)."""

    file_id: str
    md5: str | None


@dataclass(frozen=True)
class Answer:
    """A parsed ``reportResponse`` / ``reportDoneResponse``."""

    code: int
    description: str
    report_id: str | None = None
    file_id: str | None = None
    hash: str | None = None
    files: tuple[str, ...] = ()


class CyberTiplineClient:
    """One API account (base URL, user, password). Use as a context manager or call ``close()``."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 60.0,
        attempts: int = 3,
        backoff: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ):
        url = httpx.URL(base_url)
        if url.userinfo:
            raise SafeholdError(
                "cybertip.not_configured",
                "the CyberTipline URL must not contain credentials: use SAFEHOLD_CYBERTIP_USERNAME and "
                "SAFEHOLD_CYBERTIP_PASSWORD",
                status=409,
            )
        self.base_url = str(url).rstrip("/")
        self.username = username
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            auth=httpx.BasicAuth(username, password),
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"Accept": "text/xml, application/xml"},
        )

    @classmethod
    def from_settings(cls, settings) -> CyberTiplineClient:
        """The configured account; ``cybertip.not_configured`` (409) without credentials. Retries inside one
        request are few and short (the filer spaces its own attempts with ``cybertip_backoff_seconds``)."""
        if not settings.cybertip_username or not settings.cybertip_password:
            raise SafeholdError(
                "cybertip.not_configured",
                "no CyberTipline credentials: set SAFEHOLD_CYBERTIP_USERNAME and SAFEHOLD_CYBERTIP_PASSWORD "
                "(the ESP account NCMEC issued)",
                status=409,
            )
        return cls(
            settings.cybertip_url,
            settings.cybertip_username,
            settings.cybertip_password,
            timeout=settings.cybertip_timeout,
            backoff=min(1.0, settings.cybertip_backoff_seconds),
        )

    # ------------------------------------------------------------------------------------------------ endpoints

    def status(self) -> str:
        """``GET /status``: checks the URL and credentials; returns NCMEC's description ("Remote User : …")."""
        return self._call("status", "GET", idempotent=True).description

    def xsd(self) -> bytes:
        """``GET /xsd``: the schema the API validates against (save it and point SAFEHOLD_CYBERTIP_SCHEMA at it)."""
        status, body = self._exchange("xsd", "GET", idempotent=True)
        if status != 200 or parse_answer(body) is not None:
            self._answer("xsd", status, body)  # raises the API's error, if it gave one
            raise CyberTiplineError("cybertip.bad_response", "CyberTipline /xsd: no schema in the answer")
        return body

    def submit(self, xml: bytes) -> str:
        """``POST /submit`` a ``<report>``; returns NCMEC's report id (text)."""
        answer = self._call("submit", "POST", content=xml, headers={"Content-Type": "text/xml; charset=utf-8"})
        return self._required(answer, "submit", answer.report_id, "reportId")

    def upload(self, report_id: str, filename: str, data: bytes) -> Upload:
        """``POST /upload`` one file to an open report."""
        answer = self._call(
            "upload",
            "POST",
            data={"id": str(report_id)},
            files={"file": (filename or "file", data, "application/octet-stream")},
        )
        return Upload(file_id=self._required(answer, "upload", answer.file_id, "fileId"), md5=answer.hash)

    def fileinfo(self, xml: bytes) -> None:
        """``POST /fileinfo`` a ``<fileDetails>`` for an uploaded file."""
        self._call("fileinfo", "POST", content=xml, headers={"Content-Type": "text/xml; charset=utf-8"})

    def finish(self, report_id: str) -> list[str]:
        """``POST /finish``: completes the report (NCMEC then processes it); returns the file ids it holds."""
        return list(self._call("finish", "POST", data={"id": str(report_id)}).files)

    def retract(self, report_id: str) -> None:
        """``POST /retract``: cancels a report that is not finished."""
        self._call("retract", "POST", data={"id": str(report_id)})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CyberTiplineClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CyberTiplineClient({self.base_url!r}, username={self.username!r})"

    # ------------------------------------------------------------------------------------------------- plumbing

    def _call(self, endpoint: str, method: str, *, idempotent: bool = False, **request) -> Answer:
        """One API call, repeated (with exponential back-off) only while repeating is harmless."""
        attempt = 1
        while True:
            try:
                status, body = self._exchange(endpoint, method, idempotent=idempotent, **request)
                return self._answer(endpoint, status, body)
            except CyberTiplineError as e:
                if not e.retryable or e.ambiguous or attempt >= self.attempts:
                    raise
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning("%s; retrying in %.1fs (%d/%d)", e.message, delay, attempt, self.attempts)
                time.sleep(delay)
                attempt += 1

    def _exchange(self, endpoint: str, method: str, *, idempotent: bool, **request) -> tuple[int, bytes]:
        """Send one request; (HTTP status, body up to the cap). Transport failures become CyberTiplineErrors."""
        where = f"CyberTipline /{endpoint}"
        try:
            with self._http.stream(method, endpoint, **request) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE:
                        raise CyberTiplineError(
                            "cybertip.bad_response",
                            f"{where}: the answer is larger than {MAX_RESPONSE} bytes",
                            ambiguous=not idempotent,
                        )
                return response.status_code, bytes(body)
        except httpx.UnsupportedProtocol:
            raise CyberTiplineError(
                "cybertip.not_configured", f"{where}: the URL {self.base_url} is not http(s)", status=409
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            # Nothing reached the server: always safe to repeat.
            raise CyberTiplineError(
                "cybertip.unavailable", f"{where}: cannot connect ({_reason(e)})", retryable=True
            ) from None
        except httpx.TransportError as e:
            # Sent (at least in part) and no complete answer: NCMEC may have acted on it.
            raise CyberTiplineError(
                "cybertip.unavailable",
                f"{where}: no answer ({_reason(e)}); the request may have been processed",
                retryable=True,
                ambiguous=not idempotent,
            ) from None

    def _answer(self, endpoint: str, status: int, body: bytes) -> Answer:
        where = f"CyberTipline /{endpoint}"
        answer = parse_answer(body)
        if answer is None:
            if status == 401:
                raise CyberTiplineError("cybertip.auth", f"{where}: authentication failed (HTTP 401)")
            if status == 403:
                raise CyberTiplineError("cybertip.forbidden", f"{where}: not authorized (HTTP 403)")
            if status in _GATEWAY_NOT_SENT:
                raise CyberTiplineError(
                    "cybertip.unavailable", f"{where}: service unavailable (HTTP {status})", retryable=True
                )
            if status >= 500:
                raise CyberTiplineError(
                    "cybertip.unavailable",
                    f"{where}: server failure (HTTP {status}); the request may have been processed",
                    retryable=True,
                    ambiguous=True,
                )
            raise CyberTiplineError(
                "cybertip.bad_response",
                f"{where}: not a CyberTipline answer (HTTP {status})",
                ambiguous=200 <= status < 300,
            )
        if answer.code == 0:
            return answer
        code, http_status = _ERRORS.get(answer.code, ("cybertip.error", 502))
        meaning = RESPONSE_CODES.get(answer.code, "unknown response code")
        text = answer.description or meaning
        raise CyberTiplineError(
            code,
            f"{where}: {text} (code {answer.code})",
            response_code=answer.code,
            retryable=answer.code == SERVER_ERROR,
            status=http_status,
        )

    @staticmethod
    def _required(answer: Answer, endpoint: str, value: str | None, name: str) -> str:
        if not value:
            raise CyberTiplineError(
                "cybertip.bad_response", f"CyberTipline /{endpoint}: success without a {name}", ambiguous=True
            )
        return value


def parse_answer(body: bytes) -> Answer | None:
    """A ``reportResponse`` / ``reportDoneResponse``, or None when ``body`` is not one (or not safe XML)."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        return None
    if root.tag not in ("reportResponse", "reportDoneResponse"):
        return None
    try:
        code = int((root.findtext("responseCode") or "").strip())
    except ValueError:
        return None

    def text(tag: str) -> str | None:
        value = (root.findtext(tag) or "").strip()
        return value or None

    files = tuple(f.text.strip() for f in root.iterfind("files/fileId") if f.text and f.text.strip())
    return Answer(
        code=code,
        description=text("responseDescription") or "",
        report_id=text("reportId"),
        file_id=text("fileId"),
        hash=text("hash"),
        files=files,
    )


def _reason(e: Exception) -> str:
    return str(e) or type(e).__name__


__all__ = [
    "ALREADY_FINISHED",
    "NO_SUCH_REPORT",
    "RESPONSE_CODES",
    "Answer",
    "CyberTiplineClient",
    "CyberTiplineError",
    "Upload",
    "parse_answer",
]
