"""The plain feed: a hash list published as one file, over HTTPS or in a local folder, in any format Safehold
imports (CSV, hash list, NCMEC XML; see docs/bank-formats.md).

A feed is a **whole list**, not a change log: each time its content changes, the round reads all of it, and the
service withdraws this exchange's entries the file no longer lists (compared by signal type and value, so it works
for lists with and without ids; deletions the file itself states, such as NCMEC XML's deleted entries, apply too).

The checkpoint is the content's SHA-256 with the server's ``ETag`` / ``Last-Modified``: the next round asks
conditionally (``If-None-Match`` / ``If-Modified-Since``) and a 304 or the same bytes mean nothing to do. Only the
round's last batch stores the new checkpoint: a round cut short starts again from the top next time (what it had
added is there already; adding it again is a no-op).

Bounds: the body (``max_body_bytes``, ``exchange.too_large``), the time per request, the URL and every redirect by
:func:`~safehold.sharing.exchanges._http.check_source_url` (``exchange.forbidden_url``), at most three redirects,
local files only inside ``files`` (``SAFEHOLD_EXCHANGE_FILES_DIR``). The bearer token goes only to the feed's own
origin (scheme, host and port): a redirect to another origin is followed without it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Literal
from urllib.parse import urljoin

import httpx
from pydantic import Field, field_validator

from safehold.banks.formats import read
from safehold.errors import SafeholdError
from safehold.sharing.base import Credentials, Exchange, ExchangeError, FetchBatch, Settings
from safehold.sharing.exchanges._http import check_source_url
from safehold.signals import registry

#: Records per batch (each batch is one transaction of the service).
BATCH = 5_000
MAX_REDIRECTS = 3
CHUNK = 1 << 16


class FeedSettings(Settings):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="https:// URL (http:// only to this machine), or a file's path in SAFEHOLD_EXCHANGE_FILES_DIR.",
    )
    format: Literal["auto", "csv", "list", "ncmec-xml"] = "auto"
    signal_type: str | None = Field(None, max_length=32, description="The signal type of a plain hash list.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if "://" in url:
            try:
                check_source_url(url)
            except ExchangeError as exc:
                raise ValueError(exc.message) from None
        return url


class FeedCredentials(Credentials):
    bearer_token: str | None = Field(None, min_length=1, max_length=4096, description="Sent as Authorization: Bearer.")


class FeedExchange(Exchange):
    name = "feed"
    title = "Plain feed"
    settings_model = FeedSettings
    credentials_model = FeedCredentials
    full_list = True

    settings: FeedSettings
    credentials: FeedCredentials | None

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        before = checkpoint or {}
        with self._content(before) as got:
            if got is None:  # 304: not modified
                yield FetchBatch([], before, done=True)
                return
            body, after = got
            if after["sha256"] == before.get("sha256"):
                yield FetchBatch([], after, done=True)
                return
            yield from self._read(body, before, after)

    def _read(self, body: IO[bytes], before: dict, after: dict) -> Iterator[FetchBatch]:
        """The file's records in batches; every batch but the last keeps the old checkpoint."""
        st = self.settings
        result = read(st.format, body, normalize=_normalize, default_signal_type=st.signal_type)
        batch, issues_seen = [], 0

        def step(checkpoint: dict, last: bool) -> FetchBatch:
            nonlocal batch, issues_seen
            fresh = result.issues[issues_seen:]
            issues_seen = len(result.issues)
            problems = [f"line {i.line}: [{i.code}] {i.message}"[:300] for i in fresh[:5]]
            out = FetchBatch(batch, checkpoint, malformed=len(fresh), problems=problems, done=last, snapshot=last)
            batch = []
            return out

        for rec in result:
            batch.append(rec)
            if len(batch) >= BATCH:
                yield step(before, last=False)
        if result.fatal:  # a broken file must not withdraw what it failed to list
            problem = result.issues[-1].message if result.issues else "unreadable"
            raise ExchangeError(
                "exchange.protocol", f"The feed could not be read to its end: {problem}", retryable=False
            )
        yield step(after, last=True)

    @contextmanager
    def _content(self, before: dict) -> Iterator[tuple[IO[bytes], dict] | None]:
        """The feed's bytes in a temporary file with the new checkpoint, or None when the server says unchanged."""
        with tempfile.TemporaryFile() as spool:
            if "://" in self.settings.url:
                meta = self._download(before, spool)
            else:
                meta = self._copy_local(spool)
            if meta is None:
                yield None
                return
            spool.seek(0)
            sha = hashlib.sha256()
            while chunk := spool.read(CHUNK):
                sha.update(chunk)
            spool.seek(0)
            yield spool, {**meta, "sha256": sha.hexdigest()}

    def _copy_local(self, spool: IO[bytes]) -> dict:
        root = self.files
        if root is None:  # a client built without a folder for local files
            raise ExchangeError("exchange.forbidden_path", "Local feeds are not allowed here.", retryable=False)
        path = (root / self.settings.url).resolve()
        if not path.is_relative_to(root.resolve()):
            raise ExchangeError(
                "exchange.forbidden_path",
                f"A local feed must be a file in {root} (SAFEHOLD_EXCHANGE_FILES_DIR).",
                retryable=False,
            )
        try:
            size = path.stat().st_size
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            with path.open("rb") as f:
                shutil.copyfileobj(f, spool, CHUNK)
        except OSError as exc:
            raise ExchangeError(
                "exchange.unavailable", f"The feed file cannot be read: {exc.strerror}", retryable=True
            ) from None
        return {"size": size}

    def _download(self, before: dict, spool: IO[bytes]) -> dict | None:
        headers, token = {}, self.credentials.bearer_token if self.credentials is not None else None
        if before.get("sha256"):  # only once a whole content was applied
            if before.get("etag"):
                headers["If-None-Match"] = before["etag"]
            if before.get("last_modified"):
                headers["If-Modified-Since"] = before["last_modified"]
        url = origin = self.settings.url
        try:
            with httpx.Client(transport=self.transport, timeout=self.timeout, follow_redirects=False) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    check_source_url(url)
                    sent = (
                        {**headers, "Authorization": f"Bearer {token}"}
                        if token and _same_origin(url, origin)
                        else headers
                    )
                    with client.stream("GET", url, headers=sent) as r:
                        if r.is_redirect and "location" in r.headers:
                            url = urljoin(url, r.headers["location"])
                            continue
                        return self._body(r, spool)
                raise _protocol(f"More than {MAX_REDIRECTS} redirects.")
        except httpx.TimeoutException:
            raise ExchangeError("exchange.unavailable", "The feed did not answer in time.", retryable=True) from None
        except httpx.TransportError as exc:
            raise ExchangeError(
                "exchange.unavailable", f"The feed cannot be reached ({type(exc).__name__}).", retryable=True
            ) from None

    def _body(self, r: httpx.Response, spool: IO[bytes]) -> dict | None:
        status = r.status_code
        if status == 304:
            return None
        if status in (401, 403):
            raise ExchangeError("exchange.auth", f"The feed refused the credentials (HTTP {status}).", retryable=False)
        if status == 429:
            raise ExchangeError(
                "exchange.rate_limited", "The feed asks to slow down (HTTP 429).", retryable=True,
                retry_after=_seconds(r.headers.get("retry-after")),
            )  # fmt: skip
        if status >= 500:
            raise ExchangeError("exchange.unavailable", f"The feed answered HTTP {status}.", retryable=True)
        if status != 200:
            raise _protocol(f"The feed answered HTTP {status}.")
        declared = r.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        got = 0
        for chunk in r.iter_bytes(CHUNK):  # decoded: a compressed body is bounded by what it expands to
            got += len(chunk)
            if got > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            spool.write(chunk)
        return {"etag": r.headers.get("etag"), "last_modified": r.headers.get("last-modified")}


def _normalize(signal_type: str, value: str) -> str:
    """Values of known types in canonical form; values of types no signal type reads pass as they are (the
    service keeps them as unknown hashes instead of dropping them)."""
    try:
        return registry.normalize(signal_type, value)
    except SafeholdError as exc:
        if exc.code == "signal.unknown_type":
            return value.strip()
        raise


def _same_origin(a: str, b: str) -> bool:
    """Whether two URLs share scheme, host and port (where a credential for one may also go)."""
    ua, ub = httpx.URL(a), httpx.URL(b)
    return (ua.scheme, ua.host, ua.port) == (ub.scheme, ub.host, ub.port)


def _protocol(message: str) -> ExchangeError:
    return ExchangeError("exchange.protocol", message[0].upper() + message[1:], retryable=False)


def _too_large(limit: int) -> ExchangeError:
    return ExchangeError(
        "exchange.too_large", f"The feed is larger than {limit} bytes (SAFEHOLD_EXCHANGE_MAX_BODY_BYTES).",
        retryable=False,
    )  # fmt: skip


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
