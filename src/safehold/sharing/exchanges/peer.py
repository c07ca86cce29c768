"""The subscribing side of the peer exchange: follow one bank another Safehold instance shares with us.

The source's public key is pinned in the settings (its operator sends it with ``safehold peer key``): every feed
page must carry the source's signature over its canonical encoding, be the page asked for (same bank, same
cursor), addressed to us (``peer``: our name at the source), of our bank's kind (an allow list never lands in a
block bank), signed recently (``at`` within ``max_page_age_seconds``) and move the cursor forward while it says
``more``, or the fetch stops with ``exchange.protocol`` before a record of it is applied. A round reads at most
``max_pages`` pages; the next round goes on from the stored cursor. The
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
from typing import Any

import httpx
from pydantic import Field, field_validator

from safehold.banks.formats._common import EntryRecord
from safehold.errors import SafeholdError
from safehold.sharing import peer_protocol as proto
from safehold.sharing.base import Credentials, Exchange, ExchangeError, FetchBatch, Opinion, Settings, tombstone
from safehold.sharing.exchanges._http import BatchBuilder, JsonHttp, url_setting
from safehold.signals import registry

#: How far in the future a page's ``at`` may be (the two instances' clocks differ a little).
CLOCK_SKEW_SECONDS = 300
#: Longest source error message quoted in ours.
MAX_SAID_CHARS = 200


class PeerSettings(Settings):
    url: str = Field(max_length=2048, description="The source instance's base URL (https://, http:// on loopback).")
    bank: str = Field(min_length=1, max_length=64, description="The source's bank to follow (one exchange a bank).")
    public_key: str = Field(pattern=proto.PUBLIC_KEY_PATTERN, description="The source's peer key, pinned.")
    page_size: int = Field(500, ge=1, le=proto.MAX_PAGE)
    max_pages: int = Field(1000, ge=1, le=100_000, description="pages read per round; the next round goes on")
    peer_name: str | None = Field(
        None, min_length=1, max_length=64,
        description="Our name at the source (its `peer add-peer` name); unset: asked from the source each round.",
    )  # fmt: skip
    max_page_age_seconds: int = Field(
        900, ge=30, le=86400, description="Oldest feed page accepted (by its signed `at`): an older one is a replay."
    )

    _safe_url = field_validator("url")(url_setting)


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
        with self._http() as http:
            me = self._me(http)
            for _ in range(self.settings.max_pages):
                params = {"bank": self.settings.bank, "limit": self.settings.page_size}
                if cursor:
                    params["after"] = cursor
                page = self._verified(pinned, http.request("GET", "v1/peer/feed", params=params), cursor, me)
                batch = _batch(page["entries"])
                cursor = page["next"]
                batch.checkpoint = {"cursor": cursor}
                batch.done = not page["more"]
                yield batch
                if batch.done:
                    return

    def _verified(self, pinned, answer: dict, cursor: str | None, me: str) -> dict:
        """The page of a feed answer, if it is the source's, for us, our bank and cursor; else ``exchange.protocol``."""
        page = answer.get("page")
        if not isinstance(page, dict) or not proto.verify(pinned, "feed", page, answer.get("signature")):
            raise _protocol("a feed page without the pinned key's valid signature")
        if page.get("bank") != self.settings.bank or page.get("after") != cursor:
            raise _protocol("a signed feed page for another bank or cursor (a replayed page?)")
        if page.get("peer") != me:
            raise _protocol(f"a signed feed page for another peer than {me!r} (a replayed page?)")
        if self.bank_kind is not None and page.get("kind") != self.bank_kind:
            raise _protocol(f"a feed page of a {str(page.get('kind'))[:16]!r} bank for our {self.bank_kind} bank")
        self._recent(page.get("at"))
        try:
            proto.parse_cursor(page.get("next"))
        except SafeholdError:
            raise _protocol("a feed page without a valid next cursor") from None
        if not isinstance(page.get("entries"), list) or not isinstance(page.get("more"), bool):
            raise _protocol("a feed page without its entries")
        if page["more"] and not _beyond(page["next"], cursor):
            raise _protocol("a feed page that says more but does not move its cursor forward")
        return page

    def _recent(self, at: object) -> None:
        """A page signed within ``max_page_age_seconds`` (and not from the future): an old page is not replayed."""
        try:
            when = dt.datetime.fromisoformat(at) if isinstance(at, str) else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise _protocol("a feed page without its signing time")
        age = (dt.datetime.now(dt.UTC) - when).total_seconds()
        if not -CLOCK_SKEW_SECONDS <= age <= self.settings.max_page_age_seconds:
            raise _protocol(f"a feed page signed {int(age)} s ago (at most {self.settings.max_page_age_seconds})")

    def _me(self, http: JsonHttp) -> str:
        """Our name at the source: the setting, or what the source answers to our token."""
        if self.settings.peer_name:
            return self.settings.peer_name
        me = http.request("GET", "v1/peer/key").get("peer")
        if not isinstance(me, str) or not me:
            raise _protocol("a key answer without our peer name")
        return me

    def check(self) -> None:
        """The source answers with the pinned key and shares our bank, of our bank's kind, with us."""
        with self._http() as http:
            if http.request("GET", "v1/peer/key").get("public_key") != self.settings.public_key:
                raise _protocol("the source's key is not the pinned one")
            banks = http.request_json("GET", "v1/peer/banks")
        if not isinstance(banks, list):
            raise _protocol("a list of banks that is not a list")
        shared = {b.get("name"): b.get("kind") for b in banks if isinstance(b, dict)}
        if self.settings.bank not in shared:
            raise ExchangeError(
                "exchange.rejected", f"The source shares no bank {self.settings.bank!r} with us.", retryable=False
            )
        if self.bank_kind is not None and shared[self.settings.bank] != self.bank_kind:
            raise ExchangeError(
                "exchange.rejected",
                f"The source's bank {self.settings.bank!r} is not a {self.bank_kind} bank like ours.",
                retryable=False,
            )  # fmt: skip

    # ---------------------------------------------- feedback, contributions

    def send_feedback(self, opinion: Opinion) -> None:
        body = {"verdict": opinion.verdict, "reason": opinion.reason, "category": opinion.category}
        if opinion.external_id and opinion.external_id.isdigit():
            body["entry_id"] = int(opinion.external_id)
        else:
            body |= {"signal_type": opinion.signal_type, "value": opinion.value}
        with self._http() as http:
            http.request("POST", "v1/peer/feedback", json=body)

    def contribute(self, records: Sequence[EntryRecord]) -> int:
        key = self._signing_key()
        hashes = [
            {"id": r.external_id, "signal_type": r.signal_type, "value": r.value, "category": r.category}
            for r in records
            if not r.is_tombstone
        ]
        taken = 0
        with self._http() as http:
            me = self._me(http)
            for start in range(0, len(hashes), proto.MAX_CONTRIBUTION):
                doc = {"peer": me, "at": _now(), "entries": hashes[start : start + proto.MAX_CONTRIBUTION]}
                body = {"contribution": doc, "signature": proto.sign(key, "contribution", doc)}
                answer = http.request("POST", "v1/peer/contributions", json=body)
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

    def _http(self) -> JsonHttp:
        token = self.credentials.token if self.credentials else ""
        return JsonHttp(
            self, self.settings.url, title="The peer", classify=_peer_error, secrets=(token,),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )  # fmt: skip


def _peer_error(response: httpx.Response, body: Any) -> ExchangeError | None:
    """A refusal a Safehold source explains with its own ``{error: {code, message}}`` (quoted, shortened):
    ``exchange.rejected`` for a 4xx other than 401, 403 and 429 (those keep the common mapping)."""
    status = response.status_code
    if not 400 <= status < 500 or status in (401, 403, 429):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    said = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else f"HTTP {status}"
    return ExchangeError(
        "exchange.rejected", f"The peer refused the request ({said[:MAX_SAID_CHARS]})", retryable=False,
        detail={"status": status},
    )  # fmt: skip


def _beyond(cursor: str, before: str | None) -> bool:
    """Whether feed cursor ``cursor`` is strictly after ``before`` (``None``: the start): the copy's entry ids
    grow, then the change log's sequence numbers do."""
    if before is None:
        return True

    def position(c: str) -> tuple[int, int]:
        phase, seq, after_id = proto.parse_cursor(c)
        return (0, after_id) if phase == "fill" else (1, seq)

    try:
        return position(cursor) > position(before)
    except SafeholdError:
        return False


def _batch(entries: list) -> FetchBatch:
    """A page's entries as records: additions, withdrawals (tombstones), unknown types kept, malformed counted.
    The source names hashes with Safehold's own signal types, so they map to themselves."""
    builder = BatchBuilder({name: name for name in registry.all_signal_types()})
    for item in entries:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or len(item["id"]) > 128:
            builder.bad("an entry without an id")
        elif item.get("op") == "remove":
            builder.delete(tombstone(item["id"]))
        elif item.get("op") != "add" or not isinstance(item.get("signal_type"), str) or len(item["signal_type"]) > 64:
            builder.bad(f"entry {item['id']}: neither a valid addition nor a withdrawal")
        else:
            category = item.get("category") if isinstance(item.get("category"), str) else None
            builder.add(item["signal_type"], item.get("value"), item["id"], category=category)
    return builder.batch({}, done=False)


def _protocol(what: str) -> ExchangeError:
    return ExchangeError("exchange.protocol", f"The peer sent {what}.", retryable=False)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
