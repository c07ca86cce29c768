"""One bounded JSON-over-HTTPS request that turns every failure into the caller's error class with a stable code.

The caller says how its errors are made with an :class:`ErrorFactory` (:func:`prefixed` builds one from an error
class and a code prefix, e.g. ``ExchangeError`` and ``exchange``). Kinds, mapped from the answer (a caller may
refine the mapping with ``classify``): 401/403 → ``auth``; 429 → ``rate_limited`` (with the ``Retry-After``
seconds); 5xx, timeouts and network errors → ``unavailable``; anything else unexpected, a redirect, a body over
``max_body_bytes`` or a body that is not JSON → ``protocol``; a URL the rule refuses → ``forbidden_url``.

:func:`check_source_url` is the one rule for where Safehold may connect outbound (every client applies it to its
base URL and to each redirect it would follow).
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from safehold.errors import SafeholdError
from safehold.scanning.fetch import forbidden_address

#: Host names that are this machine (stand-ins and local feeds run here).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class ErrorFactory(Protocol):
    """Makes the caller's error for one failure ``kind`` (``auth``, ``rate_limited``, ``unavailable``,
    ``protocol``, ``forbidden_url``)."""

    def __call__(
        self,
        kind: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        detail: dict | None = None,
    ) -> SafeholdError: ...


def prefixed(error_class: Callable[..., SafeholdError], prefix: str) -> ErrorFactory:
    """An :class:`ErrorFactory` making ``error_class(f"{prefix}.{kind}", message, retryable=…, retry_after=…,
    detail=…)``."""

    def make(
        kind: str, message: str, *, retryable: bool, retry_after: float | None = None, detail: dict | None = None
    ) -> SafeholdError:
        return error_class(f"{prefix}.{kind}", message, retryable=retryable, retry_after=retry_after, detail=detail)

    return make


#: ``classify(response, parsed_body_or_None)``: a caller-specific error for a non-2xx answer, or ``None``.
Classifier = Callable[[httpx.Response, Any], SafeholdError | None]


def check_source_url(url: str, *, errors: ErrorFactory, subject: str) -> str:
    """``url`` if Safehold may connect to it, else the ``forbidden_url`` error (``subject`` names who connects:
    "An exchange", "A screening service").

    The rule: ``https://`` with a host, or ``http://`` only to this machine (loopback); and a host written as an
    IP address must be public by the URL scanner's SSRF deny list (private, link-local and cloud-metadata, CGNAT,
    reserved...) unless it is loopback. Host names are not resolved here: only admins configure outbound services,
    and a resolution at settings time would not bind the later connection anyway; the address literal is what an
    attacker-controlled redirect would use to reach an internal service, and it is refused on every hop.
    """
    parts = urlsplit(url or "")
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0]) if host else None
    except ValueError:
        address = None
    loopback = host in LOOPBACK_NAMES or (address is not None and address.is_loopback)
    if not host or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not loopback):
        raise errors(
            "forbidden_url", f"{subject} URL is https:// (or http:// to this machine only); got {_shown(url)}.",
            retryable=False,
        )  # fmt: skip
    if address is not None and not loopback and forbidden_address(address):
        raise errors(
            "forbidden_url", f"{subject} may not connect to the non-public address {address}.", retryable=False
        )
    return url


def url_setting(url: str, *, errors: ErrorFactory, subject: str) -> str:
    """:func:`check_source_url` for a settings validator: a refusal is a ``ValueError``, so the settings model
    refuses the value naming the field and why."""
    try:
        return check_source_url(url, errors=errors, subject=subject)
    except SafeholdError as exc:
        raise ValueError(exc.message) from None


def _shown(url: str) -> str:
    """The URL's scheme and host only: its path or query may hold a token."""
    parts = urlsplit(url or "")
    return repr(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.scheme else (url or "")[:40])


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or odd."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class JsonHttp:
    """An ``httpx`` client bound to one service's base URL, timeout, transport and body limit. The base URL is
    checked again here (settings stored before the rule was) and redirects are never followed."""

    def __init__(
        self,
        base_url: str,
        *,
        title: str,
        errors: ErrorFactory,
        subject: str,
        timeout: float,
        max_body_bytes: int,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        classify: Classifier | None = None,
        secrets: tuple[str, ...] = (),
    ):
        self.title = title
        self.errors = errors
        self._secrets = tuple(s for s in secrets if s)
        self.max_body_bytes = max_body_bytes
        self._classify = classify
        self._client = httpx.Client(
            base_url=check_source_url(base_url, errors=errors, subject=subject).rstrip("/") + "/",
            headers=dict(headers or {}),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def __enter__(self) -> JsonHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> dict:
        """The JSON object the service answered to ``method path`` (``path`` relative to the base URL)."""
        parsed = self.request_json(method, path, **kwargs)
        if not isinstance(parsed, dict):
            raise self.errors(
                "protocol", f"{self.title} answered {method} {path} with something not a JSON object", retryable=False
            )
        return parsed

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any JSON value the service answered (a list, say); a body that is not JSON is a ``protocol`` error."""
        try:
            with self._client.stream(method, path.lstrip("/"), **kwargs) as response:
                body = self._read(response)
        except httpx.TimeoutException as exc:
            raise self.errors(
                "unavailable", f"{self.title} did not answer in time ({self._scrub(exc)})", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise self.errors(
                "unavailable", f"{self.title} cannot be reached: {type(exc).__name__}: {self._scrub(exc)}",
                retryable=True,
            ) from None  # fmt: skip
        parsed = _json_or_none(body)
        if not response.is_success:
            raise self._failure(response, parsed)
        if parsed is None:
            raise self.errors(
                "protocol", f"{self.title} answered {method} {path} with something not JSON",
                retryable=False, detail={"status": response.status_code},
            )  # fmt: skip
        return parsed

    def _scrub(self, exc: Exception) -> str:
        """The error's text without any secret (a service taking its key in the query string may echo the URL)."""
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> SafeholdError:
        return self.errors(
            "protocol", f"{self.title} sent an answer over {self.max_body_bytes} bytes",
            retryable=False, detail={"max_body_bytes": self.max_body_bytes},
        )  # fmt: skip

    def _failure(self, response: httpx.Response, parsed: Any) -> SafeholdError:
        if self._classify is not None and (err := self._classify(response, parsed)) is not None:
            return err
        status = response.status_code
        detail = {"status": status}
        if response.is_redirect:  # never followed: a redirect could lead the credentials to another origin
            return self.errors(
                "protocol", f"{self.title} answered with a redirect (HTTP {status}), which is not followed",
                retryable=False, detail=detail,
            )  # fmt: skip
        if status in (401, 403):
            return self.errors(
                "auth", f"{self.title} refused the credentials (HTTP {status})", retryable=False, detail=detail
            )
        if status == 429:
            wait = retry_after(response.headers.get("Retry-After"))
            return self.errors(
                "rate_limited", f"{self.title} is rate limiting us (HTTP 429)",
                retryable=True, retry_after=wait, detail={**detail, "retry_after": wait},
            )  # fmt: skip
        if status >= 500:
            return self.errors("unavailable", f"{self.title} failed (HTTP {status})", retryable=True, detail=detail)
        return self.errors(
            "protocol", f"{self.title} refused the request (HTTP {status})", retryable=False, detail=detail
        )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None
