"""The subscribing side of the peer exchange: follow one bank another Safehold instance shares with us.

The source's public key is pinned in the settings (its operator sends it with ``safehold peer key``): every feed
page must carry the source's signature over its canonical encoding, be the page asked for (same bank, same
cursor) and nothing else, or the fetch stops with ``exchange.protocol`` before a record of it is applied. The
wire format is :mod:`safehold.sharing.peer_protocol`; the publishing side is :mod:`safehold.sharing.peers`.

Withdrawals come as tombstones of the source's entry id (each addition's ``external_id``), so a withdrawn entry
is withdrawn here too. Feedback goes back to the source's ``/v1/peer/feedback``; contributions go to its
``/v1/peer/contributions``, signed with our own peer key (credential ``signing_key``, see ``safehold peer key
--secret``), and land there disabled until its operator reviews them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterator, Sequence

import httpx
from pydantic import Field

from safehold.banks.formats._common import EntryRecord
from safehold.errors import SafeholdError
from safehold.sharing import peer_protocol as proto
from safehold.sharing.base import (
    Credentials,
    Exchange,
    ExchangeError,
    FetchBatch,
    Opinion,
    Settings,
    UnknownSignal,
    tombstone,
)
from safehold.signals import registry

_URL = r"^https?://[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?(/[!-~]*)?$"


class PeerSettings(Settings):
    url: str = Field(pattern=_URL, max_length=2048, description="The source instance's base URL.")
    bank: str = Field(min_length=1, max_length=64, description="The source's bank to follow (one exchange a bank).")
    public_key: str = Field(pattern=proto.PUBLIC_KEY_PATTERN, description="The source's peer key, pinned.")
    page_size: int = Field(500, ge=1, le=proto.MAX_PAGE)


class PeerCredentials(Credentials):
    token: str = Field(min_length=1, max_length=256, description="The API key the source issued to us.")
    signing_key: str | None = Field(
        None, max_length=64, description="Our own peer signing seed (base64), to sign contributions."
    )


class PeerExchange(Exchange):
    name = "peer"
    title = "Safehold peer"
    settings_model = PeerSettings
    credentials_model = PeerCredentials
    accepts_feedback = True
    accepts_contributions = True
    default_every = 900

    settings: PeerSettings
    credentials: PeerCredentials

    # ---------------------------------------------------------------- fetch

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        pinned = proto.parse_public_key(self.settings.public_key)
        cursor = (checkpoint or {}).get("cursor")
        with self._client() as client:
            while True:
                params = {"bank": self.settings.bank, "limit": self.settings.page_size}
                if cursor:
                    params["after"] = cursor
                answer = self._call(client, "GET", "/v1/peer/feed", params=params)
                page = self._verified(pinned, answer, cursor)
                batch = _batch(page["entries"])
                cursor = page["next"]
                batch.checkpoint = {"cursor": cursor}
                batch.done = not page["more"]
                yield batch
                if batch.done:
                    return

    def _verified(self, pinned, answer: object, cursor: str | None) -> dict:
        """The page of a feed answer, if it is the source's, for our bank and cursor; else ``exchange.protocol``."""
        page = answer.get("page") if isinstance(answer, dict) else None
        if not isinstance(page, dict) or not proto.verify(pinned, "feed", page, answer.get("signature")):
            raise _protocol("a feed page without the pinned key's valid signature")
        if page.get("bank") != self.settings.bank or page.get("after") != cursor:
            raise _protocol("a signed feed page for another bank or cursor (a replayed page?)")
        try:
            proto.parse_cursor(page.get("next"))
        except SafeholdError:
            raise _protocol("a feed page without a valid next cursor") from None
        if not isinstance(page.get("entries"), list) or not isinstance(page.get("more"), bool):
            raise _protocol("a feed page without its entries")
        return page

    def check(self) -> None:
        """The source answers with the pinned key and shares our bank with us."""
        with self._client() as client:
            if _object(self._call(client, "GET", "/v1/peer/key")).get("public_key") != self.settings.public_key:
                raise _protocol("the source's key is not the pinned one")
            banks = self._call(client, "GET", "/v1/peer/banks")
        if not isinstance(banks, list):
            raise _protocol("a list of banks that is not a list")
        shared = {b.get("name") for b in banks if isinstance(b, dict)}
        if self.settings.bank not in shared:
            raise ExchangeError(
                "exchange.rejected", f"The source shares no bank {self.settings.bank!r} with us.", retryable=False
            )

    # ---------------------------------------------- feedback, contributions

    def send_feedback(self, opinion: Opinion) -> None:
        body = {"verdict": opinion.verdict, "reason": opinion.reason, "category": opinion.category}
        if opinion.external_id and opinion.external_id.isdigit():
            body["entry_id"] = int(opinion.external_id)
        else:
            body |= {"signal_type": opinion.signal_type, "value": opinion.value}
        with self._client() as client:
            self._call(client, "POST", "/v1/peer/feedback", json=body)

    def contribute(self, records: Sequence[EntryRecord]) -> int:
        key = self._signing_key()
        hashes = [
            {"id": r.external_id, "signal_type": r.signal_type, "value": r.value, "category": r.category}
            for r in records
            if not r.is_tombstone
        ]
        taken = 0
        with self._client() as client:
            me = _object(self._call(client, "GET", "/v1/peer/key")).get("peer")
            for start in range(0, len(hashes), proto.MAX_CONTRIBUTION):
                doc = {"peer": me, "at": _now(), "entries": hashes[start : start + proto.MAX_CONTRIBUTION]}
                body = {"contribution": doc, "signature": proto.sign(key, "contribution", doc)}
                answer = _object(self._call(client, "POST", "/v1/peer/contributions", json=body))
                if not isinstance(answer.get("accepted"), int):
                    raise _protocol("a contribution answer without its count")
                taken += answer["accepted"]
        return taken

    def _signing_key(self):
        seed = self.credentials.signing_key if self.credentials else None
        try:
            raw = base64.b64decode(seed or "", validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ExchangeError(
                "exchange.not_supported",
                "Contributions need the credential signing_key (from `safehold peer key --secret`).",
                retryable=False,
            )
        return proto.signing_key(raw)

    # ----------------------------------------------------------------- HTTP

    def _client(self) -> httpx.Client:
        token = self.credentials.token if self.credentials else ""
        return httpx.Client(
            base_url=self.settings.url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=self.timeout,
            transport=self.transport,
            follow_redirects=False,
        )

    def _call(self, client: httpx.Client, method: str, path: str, **kw) -> object:
        """One request; the answer's JSON (bounded by ``max_body_bytes``) or the :class:`ExchangeError` it means."""
        try:
            with client.stream(method, path, **kw) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        raise _protocol(f"an answer over {self.max_body_bytes} bytes")
        except httpx.TimeoutException as exc:
            raise ExchangeError("exchange.unavailable", f"The peer timed out: {exc}", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ExchangeError("exchange.unavailable", f"The peer is unreachable: {exc}", retryable=True) from None
        _raise_for(r, bytes(body))
        try:
            return httpx.Response(200, content=bytes(body)).json()
        except ValueError:
            raise _protocol("an answer that is not JSON") from None


def _batch(entries: list) -> FetchBatch:
    """A page's entries as records: additions, withdrawals (tombstones), unknown types kept, malformed counted."""
    batch = FetchBatch(records=[], checkpoint={})
    known = registry.all_signal_types()
    for item in entries:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or len(item["id"]) > 128:
            _malformed(batch, "an entry without an id")
        elif item.get("op") == "remove":
            batch.records.append(tombstone(item["id"]))
        elif item.get("op") != "add" or not isinstance(item.get("value"), str) or not item["value"]:
            _malformed(batch, f"entry {item['id']}: neither a valid addition nor a withdrawal")
        elif item.get("signal_type") not in known:
            batch.unknown.append(UnknownSignal(str(item.get("signal_type"))[:64], item["value"], item["id"]))
        else:
            category = item.get("category") if isinstance(item.get("category"), str) else None
            batch.records.append(
                EntryRecord(item["signal_type"], item["value"], external_id=item["id"], category=category)
            )
    return batch


def _malformed(batch: FetchBatch, problem: str) -> None:
    batch.malformed += 1
    if len(batch.problems) < 5:
        batch.problems.append(problem)


def _raise_for(r: httpx.Response, body: bytes) -> None:
    if r.status_code < 300:
        return
    try:
        error = httpx.Response(200, content=body).json().get("error") or {}
        said = f"{error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        said = f"HTTP {r.status_code}"
    if r.status_code == 429:
        after = r.headers.get("retry-after", "")
        raise ExchangeError(
            "exchange.rate_limited",
            f"The peer is rate limiting us ({said})",
            retryable=True,
            retry_after=float(after) if after.isdigit() else None,
        )
    if r.status_code >= 500:
        raise ExchangeError("exchange.unavailable", f"The peer failed ({said})", retryable=True)
    if r.status_code in (401, 403):
        raise ExchangeError("exchange.auth", f"The peer refused our credentials ({said})", retryable=False)
    raise ExchangeError("exchange.rejected", f"The peer refused the request ({said})", retryable=False)


def _object(answer: object) -> dict:
    if not isinstance(answer, dict):
        raise _protocol("an answer that is not a JSON object")
    return answer


def _protocol(what: str) -> ExchangeError:
    return ExchangeError("exchange.protocol", f"The peer sent {what}.", retryable=False)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
