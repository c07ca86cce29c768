"""What the JSON-over-HTTPS exchanges (StopNCII, ThreatExchange, Tech Against Terrorism) share: one bounded request
that turns every failure into an :class:`~safehold.sharing.base.ExchangeError` with a stable code, and a batch
builder that maps a source's hash types onto Safehold's signal types without dropping what it cannot map.

Status mapping (a source may refine it with ``classify``): 401/403 → ``exchange.auth``; 429 →
``exchange.rate_limited`` (with the ``Retry-After`` seconds); 5xx, timeouts and network errors →
``exchange.unavailable``; anything else unexpected, a body over the exchange's ``max_body_bytes`` or a body that is
not a JSON object → ``exchange.protocol``.

:func:`check_source_url` is the one rule for where an exchange may connect (every client applies it to its base URL
and to each redirect it would follow).
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from safehold.banks.formats._common import EntryRecord
from safehold.errors import SafeholdError
from safehold.scanning.fetch import forbidden_address
from safehold.sharing.base import Exchange, ExchangeError, FetchBatch, UnknownSignal
from safehold.signals import registry as signals

#: How many sample messages about malformed records one batch keeps.
MAX_PROBLEMS = 5
#: Longest hash value taken from a source (a longer one is a malformed record, not something to store).
MAX_VALUE_CHARS = 4096

#: ``classify(response, parsed_body_or_None)``: a source-specific error for a non-2xx answer, or ``None``.
Classifier = Callable[[httpx.Response, Any], ExchangeError | None]

#: Host names that are this machine (stand-ins and local feeds run here).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def check_source_url(url: str) -> str:
    """``url`` if an exchange may connect to it, else ``exchange.forbidden_url``.

    The rule: ``https://`` with a host, or ``http://`` only to this machine (loopback); and a host written as an
    IP address must be public by the URL scanner's SSRF deny list (private, link-local and cloud-metadata, CGNAT,
    reserved...) unless it is loopback. Host names are not resolved here: only admins configure exchanges, and a
    resolution at settings time would not bind the later connection anyway; the address literal is what an
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
        raise _forbidden_url(f"An exchange URL is https:// (or http:// to this machine only); got {_shown(url)}.")
    if address is not None and not loopback and forbidden_address(address):
        raise _forbidden_url(f"An exchange may not connect to the non-public address {address}.")
    return url


def _shown(url: str) -> str:
    """The URL's scheme and host only: its path or query may hold a token."""
    parts = urlsplit(url or "")
    return repr(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.scheme else (url or "")[:40])


def _forbidden_url(message: str) -> ExchangeError:
    return ExchangeError("exchange.forbidden_url", message, retryable=False)


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
    """An ``httpx`` client bound to one exchange's base URL, timeout, transport and body limit."""

    def __init__(
        self,
        exchange: Exchange,
        base_url: str,
        *,
        title: str,
        headers: Mapping[str, str] | None = None,
        classify: Classifier | None = None,
        secrets: tuple[str, ...] = (),
    ):
        self.title = title
        self._secrets = tuple(s for s in secrets if s)
        self.max_body_bytes = exchange.max_body_bytes
        self._classify = classify
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=dict(headers or {}),
            timeout=exchange.timeout,
            transport=exchange.transport,
            follow_redirects=False,
        )

    def __enter__(self) -> JsonHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> dict:
        """The JSON object the source answered to ``method path`` (``path`` relative to the base URL)."""
        try:
            with self._client.stream(method, path.lstrip("/"), **kwargs) as response:
                body = self._read(response)
        except httpx.TimeoutException as exc:
            raise ExchangeError(
                "exchange.unavailable", f"{self.title} did not answer in time ({self._scrub(exc)})", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise ExchangeError(
                "exchange.unavailable", f"{self.title} cannot be reached: {type(exc).__name__}: {self._scrub(exc)}",
                retryable=True,
            ) from None  # fmt: skip
        parsed = _json_or_none(body)
        if not response.is_success:
            raise self._failure(response, parsed)
        if not isinstance(parsed, dict):
            raise ExchangeError(
                "exchange.protocol", f"{self.title} answered {method} {path} with something not a JSON object",
                retryable=False, detail={"status": response.status_code},
            )  # fmt: skip
        return parsed

    def _scrub(self, exc: Exception) -> str:
        """The error's text without any secret (a source taking its token in the query string may echo the URL)."""
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

    def _too_large(self) -> ExchangeError:
        return ExchangeError(
            "exchange.protocol", f"{self.title} sent an answer over {self.max_body_bytes} bytes",
            retryable=False, detail={"max_body_bytes": self.max_body_bytes},
        )  # fmt: skip

    def _failure(self, response: httpx.Response, parsed: Any) -> ExchangeError:
        if self._classify is not None and (err := self._classify(response, parsed)) is not None:
            return err
        status = response.status_code
        detail = {"status": status}
        if status in (401, 403):
            return ExchangeError(
                "exchange.auth", f"{self.title} refused the credentials (HTTP {status})", retryable=False, detail=detail
            )
        if status == 429:
            wait = retry_after(response.headers.get("Retry-After"))
            return ExchangeError(
                "exchange.rate_limited", f"{self.title} is rate limiting us (HTTP 429)",
                retryable=True, retry_after=wait, detail={**detail, "retry_after": wait},
            )  # fmt: skip
        if status >= 500:
            return ExchangeError(
                "exchange.unavailable", f"{self.title} failed (HTTP {status})", retryable=True, detail=detail
            )
        return ExchangeError(
            "exchange.protocol", f"{self.title} refused the request (HTTP {status})", retryable=False, detail=detail
        )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None


class BatchBuilder:
    """Collects one page's records: mapped hashes, tombstones, unknown types and malformed records.

    ``type_map`` maps the source's type names to Safehold signal type names; a source type missing from it, or
    mapped to a type this installation does not have, goes to :attr:`FetchBatch.unknown` (kept, not dropped). A
    value the signal type refuses (e.g. a PDQ hash of the wrong length) is a malformed record.
    """

    def __init__(self, type_map: Mapping[str, str]):
        self._type_map = type_map
        self._installed = signals.all_signal_types()
        self.records: list[EntryRecord] = []
        self.unknown: list[UnknownSignal] = []
        self.malformed = 0
        self.problems: list[str] = []

    def bad(self, message: str) -> None:
        """Count a record that could not be read; keep the first few messages."""
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    def delete(self, record: EntryRecord) -> None:
        self.records.append(record)

    def add(
        self,
        source_type: str,
        value: Any,
        external_id: str,
        *,
        category: str | None = None,
        metadata: dict | None = None,
    ) -> None:
        """One hash of the source, mapped to a signal type or kept as unknown."""
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE_CHARS:
            self.bad(f"entry {external_id}: the {source_type} value is missing or not a usable string")
            return
        name = self._type_map.get(source_type)
        if name is None or name not in self._installed:
            self.unknown.append(UnknownSignal(signal_type=source_type, value=value, external_id=external_id))
            return
        try:
            value = self._installed[name].normalize(value)
        except SafeholdError as exc:
            self.bad(f"entry {external_id}: {exc.message}")
            return
        self.records.append(
            EntryRecord(
                signal_type=name, value=value, external_id=external_id, category=category, metadata=metadata or {}
            )
        )

    def batch(self, checkpoint: dict, *, done: bool) -> FetchBatch:
        return FetchBatch(
            records=self.records, checkpoint=checkpoint, unknown=self.unknown,
            malformed=self.malformed, problems=self.problems, done=done,
        )  # fmt: skip
