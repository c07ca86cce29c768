"""NCMEC's Hash Sharing API v2 as an exchange (type ``ncmec``): fetch its entries, send per-entry feedback.

The protocol (NCMEC's documentation, https://report.cybertip.org/hashsharing/v2/documentation.pdf, as used by
Meta's python-threatexchange): every environment (a list: industry, NGO, law enforcement, generative-AI, …) is a
base URL with the same routes, HTTP Basic authentication and XML answers in the namespace
``https://hashsharing.ncmec.org/hashsharing/v2``:

* ``GET /v2/status``: who we are (``<status><member id="…">name</member></status>``);
* ``GET /v2/entries?from=…&to=…``: entries whose *update* timestamp is in the window, a page at a time, in an order
  that is **not** time order; each page is ``<queryResult>`` with ``<images>``/``<videos>`` blocks of
  ``<image>``/``<video>`` (member, id, timestamp, classification, fingerprints) and ``<deletedImage>``/
  ``<deletedVideo>`` tombstones, and ``<paging><next>/v2/entries?…&start=…&size=…&max=…</next></paging>`` while
  more pages remain (the link is relative to the environment's base URL);
* ``GET /v2/feedback/{TYPE}/reasons``: the reasons a negative vote on a fingerprint type may give;
* ``PUT /v2/entries/{memberId}/{entryId}/{TYPE}/feedback``: a ``<feedbackSubmission>`` with ``<affirmative/>`` or
  ``<negative><reasonIds><guid>…</guid></reasonIds></negative>``.

Checkpoint (why it cannot be "the newest timestamp seen"): NCMEC pages a window in no time order, and an entry's
timestamp is its last *update*, so a crash half-way through a window leaves unread entries older than ones already
read. Progress is therefore a window boundary, never a timestamp read from an entry:

* ``since``: every entry updated at or before it has been read (a finished window's ``to``);
* while a window is being paged: ``window_to`` (its fixed end) and ``next`` (the paging link to the next page) with
  ``next_at`` (when NCMEC gave it). A resumed fetch follows ``next`` if it is younger than ``link_ttl_seconds``
  (NCMEC advises not to keep paging links long), else reads the whole window again: repeats are harmless, losses
  are not.
* ``window_to`` is ``now - lag_seconds`` when a window opens: an entry updated *while* we page gets a timestamp after
  ``window_to`` and is read by the next window; ``lag_seconds`` also covers an update stamped a moment before it
  became visible. The next window starts *at* the previous ``to`` (not after it), so an entry stamped exactly on
  the boundary is read whether NCMEC's bounds are inclusive or not.
* if a window's result set changes while it is paged (``max`` in the paging links moves), NCMEC may be paging by
  position over a live set, which can skip an entry still in the window: the window is read again.

Records: one per fingerprint, ``external_id`` ``"{memberId}-{entryId}"`` (entry ids are only unique per member; the
member is also what feedback is addressed to); a deleted entry is a tombstone of that id. Fingerprint types map to
Safehold signal types (``md5``, ``sha1``, ``pdq``; ``pdna`` → ``photodna``, others lower-cased) and a type no
installed signal type reads goes to :attr:`FetchBatch.unknown`. An entry without an id or member, or a fingerprint
its signal type refuses, is counted malformed; the page goes on (:mod:`.ncmec_page` reads pages).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from lxml import etree
from pydantic import AwareDatetime, Field, HttpUrl, SecretStr, field_validator

from safehold.banks.formats.ncmec_xml import NCMEC_NS, SIGNAL_TO_FINGERPRINT
from safehold.sharing.base import (
    Credentials,
    Exchange,
    ExchangeError,
    FetchBatch,
    Opinion,
    Settings,
)
from safehold.sharing.exchanges._http import check_source_url, retry_after, url_setting
from safehold.sharing.exchanges.ncmec_page import PageParser, local_name, protocol_error, signal_readers

log = logging.getLogger(__name__)

NS = NCMEC_NS
VERSION = "v2"
#: Times a window whose result set changed while paged is read again (then the next round's overlap must do).
MAX_REREADS = 2
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000Z"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Environment(StrEnum):
    """NCMEC's lists (each its own database, readable by whom NCMEC allows) and their test twins."""

    industry = "https://report.cybertip.org/hashsharing"
    industry_exploitative = "https://report.cybertip.org/exploitative-hashsharing"
    law_enforcement = "https://lesp.ncmec.org/csam-hashsharing"
    ngo = "https://hashsharing.ncmec.org/npo"
    ngo_exploitative = "https://hashsharing.ncmec.org/exploitative"
    ngo_generative_ai = "https://hashsharing.ncmec.org/generative-ai-csam"
    ngo_generative_ai_exploitative = "https://hashsharing.ncmec.org/generative-ai-exploitative"
    test_industry = "https://exttest.cybertip.org/hashsharing"
    test_industry_exploitative = "https://exttest.cybertip.org/exploitative-hashsharing"
    test_law_enforcement = "https://betalesp.ncmec.org/csam-hashsharing"
    test_ngo = "https://hashsharing-test.ncmec.org/npo"
    test_ngo_exploitative = "https://hashsharing-test.ncmec.org/exploitative"
    test_ngo_generative_ai = "https://hashsharing-test.ncmec.org/generative-ai-csam"
    test_ngo_generative_ai_exploitative = "https://hashsharing-test.ncmec.org/generative-ai-exploitative"


class NcmecSettings(Settings):
    """Which list to follow and how. ``environment`` is a name of :class:`Environment`; ``base_url`` overrides its
    URL (a stand-in, a proxy). ``start`` is where the first fetch begins (default: the beginning)."""

    environment: str = "industry"
    base_url: HttpUrl | None = None
    start: AwareDatetime | None = None
    #: Seconds one ``from``/``to`` window spans (``None``: one window up to now). Smaller windows make smaller
    #: server-side result sets, and finish (advance ``since``) more often; after an empty window the next one is
    #: twice as long, so years without entries cost a few requests.
    window_seconds: Annotated[int, Field(ge=60)] | None = None
    lag_seconds: Annotated[int, Field(ge=0, le=86400)] = 60
    link_ttl_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] = 12 * 3600
    #: Sent as ``size`` on the first page of a window when set (NCMEC's own default is 1000).
    page_size: Annotated[int, Field(ge=1, le=1000)] | None = None
    #: Read only entries of these members (NCMEC ESP ids); empty: all.
    only_member_ids: Annotated[list[int], Field(max_length=1000)] = []
    #: Our feedback reason (``Opinion.reason``) → NCMEC reason name or GUID.
    feedback_reasons: Annotated[dict[str, str], Field(max_length=100)] = {}
    #: Retries of one request after a 5xx, a timeout or a 429 (then ``exchange.unavailable`` / ``rate_limited``).
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    #: Longest ``Retry-After`` honoured inside a fetch; longer ones end the round with ``exchange.rate_limited``.
    max_retry_wait: Annotated[float, Field(ge=0, le=600)] = 30.0

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, value: str) -> str:
        if value not in Environment.__members__:
            raise ValueError(f"unknown NCMEC environment {value!r}; one of {', '.join(Environment.__members__)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _safe_url(cls, url: HttpUrl | None) -> HttpUrl | None:
        if url is not None:
            url_setting(str(url))
        return url

    def url(self) -> str:
        if self.base_url is not None:
            return str(self.base_url).rstrip("/")
        return Environment[self.environment].value


class NcmecCredentials(Credentials):
    username: Annotated[str, Field(min_length=1, max_length=256)]
    password: SecretStr


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime(_TIME_FORMAT)


def ncmec_type(fingerprint_tag: str) -> str:
    """NCMEC's name of a fingerprint type in routes (``pdna`` → ``PDNA``, ``tmk-pdqf`` → ``TMK_PDQF``)."""
    return fingerprint_tag.upper().replace("-", "_")


def _result_size(link: str) -> str | None:
    """The ``max`` of a paging link: how many entries NCMEC's result set for the window holds."""
    return parse_qs(urlsplit(link).query).get("max", [None])[0]


class NcmecExchange(Exchange):
    """NCMEC's hash-sharing lists (module docstring: protocol and checkpoint)."""

    name = "ncmec"
    title = "NCMEC hash sharing"
    settings_model = NcmecSettings
    credentials_model = NcmecCredentials
    accepts_feedback = True
    default_every = 3600

    settings: NcmecSettings
    credentials: NcmecCredentials | None

    def __init__(self, *args, clock: Callable[[], float] = time.time, sleep=time.sleep, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.sleep = sleep
        self._client: httpx.Client | None = None
        self._reasons: dict[str, dict[str, str]] = {}  # NCMEC type → {guid: name}

    # ------------------------------------------------------------------------------------------------ http

    def _http(self) -> httpx.Client:
        if self._client is None:
            if self.credentials is None:
                raise ExchangeError("exchange.auth", "NCMEC needs a username and password", retryable=False)
            check_source_url(self.settings.url())  # again: settings stored before the rule was
            self._client = httpx.Client(
                auth=(self.credentials.username, self.credentials.password.get_secret_value()),
                follow_redirects=False,  # a redirect is an error: the credentials never go to another origin
                timeout=self.timeout,
                transport=self.transport,
                headers={"Accept": "application/xml"},
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(self, method: str, path: str, *, params=None, content: bytes | None = None, sink=None):
        """One call with bounded retries. With ``sink`` (a factory of :class:`PageParser`) each attempt streams the
        body into a fresh parser and the parsed :class:`Page` is returned; otherwise the body (at most
        ``max_body_bytes``) is."""
        url = self.settings.url() + path
        attempt = 0
        while True:
            try:
                return self._once(method, url, params, content, sink() if sink is not None else None)
            except ExchangeError as e:
                if not e.retryable or attempt >= self.settings.retries:
                    raise
                wait = e.retry_after if e.retry_after is not None else 0.5 * 2**attempt
                if wait > self.settings.max_retry_wait:
                    raise
                attempt += 1
                log.info("NCMEC %s %s: %s; retry %d in %.1fs", method, path.partition("?")[0], e.code, attempt, wait)
                self.sleep(wait)

    def _once(self, method, url, params, content, sink) -> bytes:
        headers = {"Content-Type": "application/xml; charset=utf-8"} if content is not None else None
        try:
            with self._http().stream(method, url, params=params, content=content, headers=headers) as r:
                self._raise_for_status(r)
                size = 0
                chunks: list[bytes] = []
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise protocol_error(f"NCMEC answer larger than {self.max_body_bytes} bytes refused")
                    if sink is not None:
                        sink.feed(chunk)
                    else:
                        chunks.append(chunk)
                return sink.close() if sink is not None else b"".join(chunks)
        except httpx.TimeoutException as e:
            raise ExchangeError("exchange.unavailable", f"NCMEC timed out: {e}", retryable=True) from None
        except httpx.HTTPError as e:
            raise ExchangeError("exchange.unavailable", f"NCMEC unreachable: {e}", retryable=True) from None

    @staticmethod
    def _raise_for_status(r: httpx.Response) -> None:
        status = r.status_code
        if status < 300:
            return
        if status in (401, 403):
            raise ExchangeError("exchange.auth", f"NCMEC refused the credentials (HTTP {status})", retryable=False)
        if status == 429:
            after = retry_after(r.headers.get("Retry-After"))
            raise ExchangeError("exchange.rate_limited", "NCMEC rate limit reached", retryable=True, retry_after=after)
        if status >= 500:
            raise ExchangeError("exchange.unavailable", f"NCMEC answered HTTP {status}", retryable=True)
        said = b""
        for chunk in r.iter_bytes():  # only the start of an error body is read: it is quoted shortened
            said += chunk
            if len(said) >= 200:
                break
        raise ExchangeError(
            "exchange.rejected", f"NCMEC answered HTTP {status}: {said[:200].decode('utf-8', 'replace')}",
            retryable=False, detail={"status": status},
        )  # fmt: skip

    def _xml(self, body: bytes):
        """A small, whole answer (status, reasons) parsed with the same refusals as pages."""
        parser = etree.XMLParser(
            resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, remove_comments=True
        )
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as e:
            raise protocol_error(f"malformed XML from NCMEC: {e}") from None
        if root.getroottree().docinfo.doctype:
            raise protocol_error("XML with a DOCTYPE (DTD or entity declarations) refused")
        return root

    # ----------------------------------------------------------------------------------------------- fetch

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        try:
            yield from self._fetch(checkpoint)
        finally:  # a round's connections end with it (also when the caller stops early)
            self.close()

    def _fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        s = self.settings
        cp = dict(checkpoint or {})
        start = int(s.start.timestamp()) if s.start is not None else 0
        since = int(cp.get("since", start))  # NCMEC's timestamps are whole seconds
        end = int(self.clock()) - s.lag_seconds
        window_to = cp.get("window_to")
        link = cp.get("next")
        if link and self.clock() - float(cp.get("next_at", 0)) > s.link_ttl_seconds:
            log.info("NCMEC paging link older than %ss: reading the window again", s.link_ttl_seconds)
            link = None
        members = {str(m) for m in s.only_member_ids}
        keep = (lambda m: m in members) if members else (lambda m: True)
        known = signal_readers()
        if window_to is None and since >= end:
            yield FetchBatch(records=[], checkpoint={"since": since}, done=True)
            return
        span = s.window_seconds
        while True:
            if window_to is None:
                window_to = end if span is None else min(end, since + span)
            window_to = int(window_to)
            seen, sizes, rereads = 0, set(), 0
            while True:
                if link:
                    if not link.startswith(f"/{VERSION}/entries?"):
                        raise protocol_error(f"unexpected paging link {link[:100]!r}")
                    path, params = link, None
                else:
                    path = f"/{VERSION}/entries"
                    params = {"from": _fmt(since), "to": _fmt(window_to)}
                    if s.page_size:
                        params["size"] = str(s.page_size)
                page = self._request("GET", path, params=params, sink=lambda: PageParser(keep, known))
                seen += page.entries
                link = page.next
                if link:
                    sizes.add(_result_size(link))
                again = not link and len(sizes) > 1 and rereads < MAX_REREADS
                if again:
                    # The window's result set changed while we paged it (NCMEC's ``max`` moved): positions may
                    # have shifted past an entry still in the window, so the window is read again.
                    log.info("NCMEC window changed while paged (sizes %s): reading it again", sorted(sizes))
                    sizes, rereads = set(), rereads + 1
                window_done = not link and not again
                last = window_done and window_to >= end
                if window_done:
                    next_cp: dict = {"since": window_to}
                else:
                    next_cp = {"since": since, "window_to": window_to, "next": link, "next_at": self.clock()}
                yield FetchBatch(
                    records=page.records, checkpoint=next_cp, unknown=page.unknown, malformed=page.malformed,
                    problems=page.problems, done=last,
                )  # fmt: skip
                if window_done:
                    break
            if last:
                return
            if span is not None:  # empty stretches (years before a list began) are crossed in doubling steps
                span = span * 2 if seen == 0 else s.window_seconds
            since, window_to, link = window_to, None, None

    # -------------------------------------------------------------------------------------- status, feedback

    def check(self) -> None:
        root = self._xml(self._request("GET", f"/{VERSION}/status"))
        member = next((c for c in root if local_name(c.tag) == "member"), None)
        if member is None or not (member.get("id") or "").strip():
            raise protocol_error("NCMEC status without a <member id>")

    def feedback_reasons(self, fingerprint_type: str) -> dict[str, str]:
        """``{guid: name}`` of the negative-feedback reasons NCMEC offers for ``fingerprint_type`` (e.g. ``MD5``).

        The ``<reason>`` elements are taken wherever they are: NCMEC's examples put them under the root
        ``<availableFeedbackReasons>``, python-threatexchange reads them one level deeper."""
        if fingerprint_type not in self._reasons:
            root = self._xml(self._request("GET", f"/{VERSION}/feedback/{fingerprint_type}/reasons"))
            self._reasons[fingerprint_type] = {
                r.get("guid"): r.get("name") or ""
                for r in root.iter()
                if local_name(r.tag) == "reason" and r.get("guid")
            }
        return self._reasons[fingerprint_type]

    def send_feedback(self, opinion: Opinion) -> None:
        member_id, sep, entry_id = (opinion.external_id or "").partition("-")
        if not (sep and member_id.isdigit() and entry_id):
            raise ExchangeError("exchange.rejected", f"not an NCMEC entry id: {opinion.external_id!r}", retryable=False)
        fp_type = ncmec_type(SIGNAL_TO_FINGERPRINT.get(opinion.signal_type, opinion.signal_type))
        root = etree.Element(f"{{{NS}}}feedbackSubmission", nsmap={None: NS})
        if opinion.verdict == "true_positive":
            etree.SubElement(root, f"{{{NS}}}affirmative")
        else:
            negative = etree.SubElement(root, f"{{{NS}}}negative")
            ids = etree.SubElement(negative, f"{{{NS}}}reasonIds")
            etree.SubElement(ids, f"{{{NS}}}guid").text = self._reason_guid(fp_type, opinion.reason)
        body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        path = f"/{VERSION}/entries/{member_id}/{quote(entry_id, safe='')}/{fp_type}/feedback"
        self._request("PUT", path, content=body)

    def _reason_guid(self, fp_type: str, reason: str | None) -> str:
        """The GUID of ``reason``: mapped by ``feedback_reasons``, a GUID NCMEC offers, a reason name (any case,
        ``_`` for blanks), or NCMEC's only reason when it offers one."""
        offered = self.feedback_reasons(fp_type)
        wanted = self.settings.feedback_reasons.get(reason or "", reason or "")

        def norm(v: str) -> str:
            return re.sub(r"[^a-z0-9]+", "_", v.lower()).strip("_")

        if _GUID.match(wanted) and wanted in offered:
            return wanted
        by_name = {norm(n): g for g, n in offered.items()}
        if wanted and norm(wanted) in by_name:
            return by_name[norm(wanted)]
        if len(offered) == 1:
            return next(iter(offered))
        raise ExchangeError(
            "exchange.rejected",
            f"no NCMEC {fp_type} feedback reason for {reason!r}; NCMEC offers: {', '.join(offered.values()) or 'none'}",
            retryable=False,
        )
