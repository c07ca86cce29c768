"""A local stand-in for NCMEC's Hash Sharing API v2, to test and benchmark fetching without NCMEC.

Used by the tests and the benchmark; it speaks what :mod:`safehold.sharing.exchanges.ncmec` documents, faithfully
enough that python-threatexchange's own NCMEC client reads from it too::

    standin = NcmecStandIn(username="esp", password="secret")
    standin.generate(200_000, start=t0, end=t1)    # synthetic entries, each made when served
    url = standin.start()                          # http://127.0.0.1:PORT/hashsharing, served from a thread
    ...
    standin.stop()

Routes under the base URL: ``GET /v2/status``, ``GET /v2/members``, ``GET /v2/entries?from=&to=[&start=&size=
&max=]``, ``GET /v2/feedback/{TYPE}/reasons``, ``PUT /v2/entries/{member}/{id}/{TYPE}/feedback`` (recorded in
:attr:`NcmecStandIn.feedback`). HTTP Basic authentication (401 with ``WWW-Authenticate`` otherwise).

Entries are paged like NCMEC: the first request of a window selects the entries whose timestamp is in
``[from, to]`` (both inclusive) and keeps that selection (a server-side cursor); pages follow the entries' internal
order, which is not time order; ``<paging><next>`` links to the next page. An entry changed after its window was
selected is shown as it is now. ``live_cursor=True`` selects again for every page instead (positions over the live
set, whose size ``max`` then changes when an entry leaves the window): the other behaviour a client must survive.
:meth:`put` adds or updates an entry (its timestamp becomes ``now`` unless given),
:meth:`delete` turns it into a ``deletedImage``/``deletedVideo``, :meth:`put_raw` inserts a verbatim (malformed)
entry. Faults: :meth:`fail` answers the next requests with a status (``Retry-After`` on a 429) or a verbatim body.
Synthetic entries (:meth:`generate`) are computed from their number when served, so millions cost only a
window's cursor (a list of their numbers); their
timestamps are a permutation of their numbers, so a window holds entries from all over the internal order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from math import gcd
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from safehold.banks.formats.ncmec_xml import NCMEC_NS as NS
from safehold.outbound.standin import ServedStandIn, next_fault

PREFIX = "/hashsharing"
PAGE_SIZE = 1000
MAX_BODY = 64 * 1024
CLASSIFICATIONS = ("A1", "A2", "B1", "B2")
#: Feedback reasons offered for every fingerprint type: guid → name.
REASONS = {
    "0d5c3c4e-7a41-4f1b-9a8e-1f2a3b4c5d01": "Not CSAM",
    "0d5c3c4e-7a41-4f1b-9a8e-1f2a3b4c5d02": "Wrong classification",
}
_KEEP_CURSORS = 16


@dataclass
class StandInEntry:
    member_id: int
    entry_id: str
    media: str  # image | video
    fingerprints: dict[str, str]  # element name (md5, sha1, pdq, pdna, netclean, …) → value
    timestamp: int
    classification: str | None = None
    deleted: bool = False
    raw: str | None = None  # a verbatim element served instead (malformed records)


@dataclass
class _Fault:
    status: int
    times: int
    retry_after: int | None = None
    body: bytes | None = None
    delay: float = 0.0


@dataclass
class _Synthetic:
    count: int
    start: int
    span: int
    mult: int
    inverse: int
    members: int

    def timestamp(self, n: int) -> int:
        return self.start + (n * self.mult % self.count) * self.span // self.count

    def numbers(self, lo: int, hi: int) -> list[int]:
        """Synthetic numbers whose timestamp is in ``[lo, hi]``."""
        c, s = self.count, self.span
        p0 = max(0, -((self.start - lo) * c // s))  # ceil((lo - start) * c / s)
        p1 = min(c - 1, ((hi - self.start + 1) * c - 1) // s)
        return [p * self.inverse % c for p in range(p0, p1 + 1)]


@lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return datetime.fromtimestamp(days * 86400, UTC).strftime("%Y-%m-%d")


def iso(ts: int) -> str:
    """``2017-10-24T15:00:00Z`` (made by hand: strftime per entry is most of a page's cost)."""
    days, sec = divmod(ts, 86400)
    h, rest = divmod(sec, 3600)
    return f"{_day(days)}T{h:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


def parse_time(value: str) -> int:
    """NCMEC's ``from``/``to``: ``2017-10-20T00:00:00.000Z`` (milliseconds optional)."""
    v = value.strip().removesuffix("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in v else "%Y-%m-%dT%H:%M:%S"
    return int(datetime.strptime(v, fmt).replace(tzinfo=UTC).timestamp())


def synthetic_fingerprints(n: int) -> dict[str, str]:
    seed = n.to_bytes(8, "big")
    fps = {"md5": hashlib.md5(seed).hexdigest(), "sha1": hashlib.sha1(seed).hexdigest()}
    if n % 10:  # one in ten is a video: MD5 and SHA-1 only
        fps["pdq"] = hashlib.sha256(seed).hexdigest()
    return fps


class NcmecStandIn(ServedStandIn):
    """The stand-in server (module docstring). ``clock`` gives ``now`` for new timestamps."""

    label = "ncmec-standin"
    prefix = PREFIX

    def __init__(
        self,
        username: str = "esp",
        password: str = "secret",
        member_id: int = 1,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
        live_cursor: bool = False,
    ):
        super().__init__()
        self.username = username
        self._password = password
        self.member_id = member_id
        self.members = {member_id: "Stand-in ESP", 42: "Example Member", 43: "Example Member 2"}
        self.clock = clock
        self.page_size = page_size
        self.live_cursor = live_cursor
        self.feedback: list[dict] = []
        self._entries: dict[int, StandInEntry] = {}  # number → entry (explicit, or a changed synthetic)
        self._keys: dict[tuple[int, str], int] = {}
        self._synthetic: _Synthetic | None = None
        self._next_number = 0
        self._cursors: dict[tuple[int, int], list[int]] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()

    # --------------------------------------------------------------------------------------------- content

    def generate(self, count: int, *, start: int, end: int, members: int = 5) -> None:
        """``count`` synthetic entries numbered after the existing ones, timestamps spread over ``[start, end)``.

        Entry ``n`` is ``s{n}`` of member ``1 + n % members``, classification ``A1``..``B2`` in turn, one in ten a
        video; fingerprints are digests of ``n`` (:func:`synthetic_fingerprints`)."""
        with self._lock:
            if self._synthetic is not None or self._entries:
                raise RuntimeError("generate() once, before any put()")
            mult = 2_654_435_761 % count or 1
            while gcd(mult, count) != 1:
                mult += 1
            self._synthetic = _Synthetic(count, start, max(1, end - start), mult, pow(mult, -1, count), members)
            self._next_number = count

    def entry(self, n: int) -> StandInEntry:
        """Entry number ``n`` as it is now."""
        if n in self._entries:
            return self._entries[n]
        syn = self._synthetic
        if syn is None or n >= syn.count:
            raise KeyError(n)
        return StandInEntry(
            member_id=1 + n % syn.members, entry_id=f"s{n}", media="video" if n % 10 == 0 else "image",
            fingerprints=synthetic_fingerprints(n), timestamp=syn.timestamp(n), classification=CLASSIFICATIONS[n % 4],
        )  # fmt: skip

    def _number(self, member_id: int, entry_id: str) -> int | None:
        n = self._keys.get((member_id, entry_id))
        syn = self._synthetic
        if n is None and syn is not None and entry_id[:1] == "s" and entry_id[1:].isdigit():
            k = int(entry_id[1:])
            if k < syn.count and 1 + k % syn.members == member_id:
                n = k
        return n

    def put(
        self,
        member_id: int,
        entry_id: str,
        fingerprints: dict[str, str],
        *,
        media: str = "image",
        classification: str | None = None,
        timestamp: int | None = None,
    ) -> StandInEntry:
        """Add an entry, or update one (same member and id): it keeps its place in the internal order."""
        with self._lock:
            ts = int(self.clock()) if timestamp is None else timestamp
            e = StandInEntry(member_id, entry_id, media, dict(fingerprints), ts, classification)
            self._store(e)
            return e

    def put_raw(self, xml: str, *, media: str = "image", timestamp: int | None = None) -> None:
        """Serve ``xml`` verbatim as one entry of the ``media`` block (a malformed record)."""
        with self._lock:
            ts = int(self.clock()) if timestamp is None else timestamp
            n = self._next_number
            self._next_number += 1
            self._entries[n] = StandInEntry(0, f"raw{n}", media, {}, ts, raw=xml)

    def delete(self, member_id: int, entry_id: str, *, timestamp: int | None = None) -> None:
        with self._lock:
            n = self._number(member_id, entry_id)
            if n is None:
                raise KeyError((member_id, entry_id))
            old = self.entry(n)
            ts = int(self.clock()) if timestamp is None else timestamp
            self._entries[n] = StandInEntry(member_id, entry_id, old.media, {}, ts, old.classification, deleted=True)

    def _store(self, e: StandInEntry) -> None:
        n = self._number(e.member_id, e.entry_id)
        if n is None:
            n = self._next_number
            self._next_number += 1
        self._keys[(e.member_id, e.entry_id)] = n
        self._entries[n] = e

    def live(self) -> dict[str, dict[str, str]]:
        """``{"member-id": fingerprints}`` of every entry not deleted (what a complete fetch must end with)."""
        with self._lock:
            out = {}
            for n in range(self._next_number):
                e = self.entry(n)
                if not e.deleted and e.raw is None:
                    out[f"{e.member_id}-{e.entry_id}"] = e.fingerprints
            return out

    # -------------------------------------------------------------------------------------------- faults

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        body: bytes | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After``), or with ``body`` verbatim,
        after ``delay`` seconds (a slow NCMEC: the client's timeout)."""
        with self._lock:
            self._faults.append(_Fault(status, times, retry_after, body, delay))

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    # ----------------------------------------------------------------------------------------------- API

    def handle(self, method: str, target: str, headers, body: bytes) -> tuple[int, bytes, dict]:
        """Answer one request: ``(status, body, extra headers)``."""
        if not self._authorised(headers.get("Authorization")):
            return 401, _doc("error", "<message>Unauthorized</message>"), {"WWW-Authenticate": 'Basic realm="NCMEC"'}
        fault = next_fault(self._faults, self._lock)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.body is not None:
                return fault.status, fault.body, {}
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return fault.status, _doc("error", f"<message>HTTP {fault.status}</message>"), extra
        url = urlsplit(target)
        path = url.path.removeprefix(PREFIX)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self._lock:
            if method == "GET" and parts == ["v2", "status"]:
                name = escape(self.members[self.member_id])
                return 200, _doc("status", f'<ipAddress>127.0.0.1</ipAddress><username>{escape(self.username)}'
                                 f'</username><member id="{self.member_id}">{name}</member>'), {}  # fmt: skip
            if method == "GET" and parts == ["v2", "members"]:
                inner = "".join(f'<member id="{i}">{escape(n)}</member>' for i, n in sorted(self.members.items()))
                return 200, _doc("members", inner), {}
            if method == "GET" and parts == ["v2", "entries"]:
                return self._entries_page(query)
            if method == "GET" and len(parts) == 4 and parts[:2] == ["v2", "feedback"] and parts[3] == "reasons":
                fp_type = escape(parts[2])
                inner = "".join(
                    f"<reason guid={quoteattr(g)} name={quoteattr(n)} type={quoteattr(fp_type)}/>"
                    for g, n in REASONS.items()
                )
                # As python-threatexchange reads it: the reasons in <availableFeedbackReasons> under the root.
                inner = f"<availableFeedbackReasons>{inner}</availableFeedbackReasons>"
                return 200, _doc("feedbackReasons", inner), {}
            if method == "PUT" and len(parts) == 6 and parts[:2] == ["v2", "entries"] and parts[5] == "feedback":
                return self._feedback(parts[2], parts[3], parts[4], body)
        return 404, _doc("error", "<message>Not found</message>"), {}

    def _authorised(self, header: str | None) -> bool:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        return bool(sep) and ok_user and hmac.compare_digest(password.encode(), self._password.encode())

    def _select(self, lo: int, hi: int) -> list[int]:
        """Entry numbers with a timestamp in ``[lo, hi]``, in internal order (a window's cursor)."""
        syn = self._synthetic
        picked = syn.numbers(lo, hi) if syn is not None else []
        picked = [n for n in picked if n not in self._entries]
        picked += [n for n, e in self._entries.items() if lo <= e.timestamp <= hi]
        picked.sort()
        return picked

    def _entries_page(self, query: dict) -> tuple[int, bytes, dict]:
        try:
            lo, hi = parse_time(query["from"]), parse_time(query["to"])
            start = int(query.get("start", "1"))
            size = min(int(query.get("size", self.page_size)), self.page_size)
        except (KeyError, ValueError):
            return 400, _doc("error", "<message>from and to (yyyy-MM-ddTHH:mm:ss.SSSZ) are required</message>"), {}
        if start < 1 or size < 1:
            return 400, _doc("error", "<message>bad start or size</message>"), {}
        key = (lo, hi)
        cursor = self._cursors.get(key) if "start" in query and not self.live_cursor else None
        if cursor is None:
            cursor = self._select(lo, hi)
            self._cursors[key] = cursor
            while len(self._cursors) > _KEEP_CURSORS:
                del self._cursors[next(iter(self._cursors))]
        chunk = cursor[start - 1 : start - 1 + size]
        blocks: dict[str, list[str]] = {"image": [], "video": []}
        newest: dict[str, int] = {}
        syn = self._synthetic
        members = {i: escape(name) for i, name in self.members.items()}
        for n in chunk:
            if n in self._entries:
                e = self._entries[n]
                media, ts = e.media, e.timestamp
                blocks[media].append(e.raw if e.raw is not None else _entry_xml(e, members))
            else:  # synthetic, written straight from its number (every part is XML-safe)
                media, ts = ("video" if n % 10 == 0 else "image"), syn.timestamp(n)
                member = 1 + n % syn.members
                fps = "".join(f"<{k}>{v}</{k}>" for k, v in synthetic_fingerprints(n).items())
                blocks[media].append(
                    f'<{media}><member id="{member}">{members.get(member, f"Member {member}")}</member>'
                    f"<timestamp>{iso(ts)}</timestamp><id>s{n}</id><classification>{CLASSIFICATIONS[n % 4]}"
                    f"</classification><fingerprints>{fps}</fingerprints></{media}>"
                )
            newest[media] = max(newest.get(media, 0), ts)
        out = []
        for media, items in blocks.items():
            if items:
                out.append(f'<{media}s count="{len(items)}" maxTimestamp="{iso(newest[media])}">')
                out.extend(items)
                out.append(f"</{media}s>")
        end = start - 1 + len(chunk)
        if end < len(cursor):
            link = (
                f"/v2/entries?from={quote(query['from'], safe='')}&to={quote(query['to'], safe='')}"
                f"&start={end + 1}&size={size}&max={len(cursor)}"
            )
            out.append(f"<paging><next>{escape(link)}</next></paging>")
        return 200, _doc("queryResult", "".join(out)), {}

    def _feedback(self, member: str, entry_id: str, fp_type: str, body: bytes) -> tuple[int, bytes, dict]:
        bad = _doc("error", "<message>invalid feedbackSubmission</message>")
        if not member.isdigit() or self._number(int(member), entry_id) is None:
            return 404, _doc("error", "<message>no such entry</message>"), {}
        try:
            root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True))
        except etree.XMLSyntaxError:
            return 400, bad, {}
        if root.tag != f"{{{NS}}}feedbackSubmission" or len(root) != 1:
            return 400, bad, {}
        vote = root[0]
        record = {"member_id": int(member), "entry_id": entry_id, "type": fp_type}
        if vote.tag == f"{{{NS}}}affirmative":
            record["vote"] = "affirmative"
        elif vote.tag == f"{{{NS}}}negative":
            guids = [g.text for g in vote.iterfind(f"{{{NS}}}reasonIds/{{{NS}}}guid")]
            if not guids or any(g not in REASONS for g in guids):
                return 400, _doc("error", "<message>unknown reason</message>"), {}
            record.update(vote="negative", reasons=guids)
        else:
            return 400, bad, {}
        self.feedback.append(record)
        return 200, _doc("submissionResult", ""), {}


def _doc(root: str, inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<{root} xmlns="{NS}">{inner}</{root}>').encode()


def _entry_xml(e: StandInEntry, members: dict[int, str]) -> str:
    """An explicit entry (``members``: names already escaped)."""
    member = f'<member id="{e.member_id}">{members.get(e.member_id, f"Member {e.member_id}")}</member>'
    head = f"{member}<timestamp>{iso(e.timestamp)}</timestamp><id>{escape(e.entry_id)}</id>"
    if e.deleted:
        tag = "deletedImage" if e.media == "image" else "deletedVideo"
        return f"<{tag}>{head}</{tag}>"
    cls = f"<classification>{e.classification}</classification>" if e.classification else ""
    fps = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in e.fingerprints.items())
    return f"<{e.media}>{head}{cls}<fingerprints>{fps}</fingerprints></{e.media}>"


def _handler(standin: NcmecStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: a benchmark makes thousands of requests
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                status, body, extra = 413, _doc("error", "<message>too large</message>"), {}
                self.close_connection = True
            else:
                payload = self.rfile.read(length) if length else b""
                try:
                    status, body, extra = standin.handle(method, self.path, self.headers, payload)
                except Exception:  # noqa: BLE001 - a stand-in bug answers 500 and keeps serving
                    status, body, extra = 500, _doc("error", "<message>stand-in error</message>"), {}
            self.send_response(status)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(body)
            except ConnectionError:  # the client stopped reading (a refused page): nothing to tell it
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve("GET")

        def do_PUT(self) -> None:  # noqa: N802
            self._serve("PUT")

    return Handler
