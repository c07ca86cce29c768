"""Meta ThreatExchange: hashes shared in privacy groups, read through the Graph API's ``threat_updates`` edge.

The protocol: ``GET {graph}/{privacy_group}/threat_updates/?access_token=&start_time=&stop_time=&limit=&fields=``
answers ``{data: [{id, indicator, type, last_updated, should_delete, descriptors: {data: [...]}}], paging: {cursors:
{after}, next}}``. An update is the current state of one *indicator* (a hash) in the group: ``should_delete`` (or no
``descriptors`` left) means it left the group and must be removed. ``start_time`` is inclusive and ``stop_time``
exclusive, so consecutive windows ``[a, b)``, ``[b, c)`` read every update exactly once. The token is the app's
``app_id|secret`` access token; Graph errors are ``{error: {type, code}}`` (``OAuthException``/190: bad token;
codes 4, 17, 32, 613: rate limits).

Each round reads, per privacy group, the window from where the last one stopped up to the moment the round began.
Checkpoint: ``{"groups": {"<id>": {"since": t}}}``; within a window also ``"until"`` and the Graph ``"after"``
cursor (never the ``next`` URL: it holds the access token).

Feedback is a *reaction* on the indicator's descriptors (``GET /{indicator}?fields=descriptors{id,owner{id}}``, then
``POST /{descriptor}`` with ``reactions=HELPFUL`` for a true positive, ``NOT_HELPFUL`` for a false positive), on every
descriptor other apps shared (our own are left alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import Field, field_validator

from safehold.sharing.base import Credentials, Exchange, ExchangeError, FetchBatch, Opinion, Settings, tombstone
from safehold.sharing.exchanges._http import BatchBuilder, JsonHttp, retry_after, url_setting

#: ThreatExchange indicator types → Safehold signal types; any other type (HASH_TMK, HASH_PHOTODNA, TEXT_STRING…) is
#: kept as unknown. ``HASH_VIDEO_MD5`` is the MD5 of the video file, which Safehold's ``md5`` is for any file.
TYPE_MAP = {
    "HASH_PDQ": "pdq",
    "HASH_MD5": "md5",
    "HASH_VIDEO_MD5": "md5",
    "HASH_SHA1": "sha1",
    "HASH_SHA256": "sha256",
    "URI": "url",
}
FIELDS = "id,indicator,type,last_updated,should_delete,descriptors{id,owner{id},status,tags,added_on}"
AUTH_CODES = frozenset({102, 190, 10, 200})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
REACTIONS = {"true_positive": "HELPFUL", "false_positive": "NOT_HELPFUL"}
#: Most descriptors of one indicator reacted to per opinion.
MAX_REACTIONS = 20
MAX_TAGS = 32


class ThreatExchangeSettings(Settings):
    base_url: str = Field("https://graph.facebook.com/v26.0", max_length=500)
    privacy_groups: list[int] = Field(min_length=1, max_length=100, description="privacy group ids to follow")
    types: list[str] = Field(default_factory=list, max_length=32, description="indicator types to ask for (all)")
    page_size: int = Field(500, ge=1, le=1000)
    max_pages: int = Field(1000, ge=1, le=100_000, description="pages read per round; the next round goes on")

    _safe_url = field_validator("base_url")(url_setting)


class ThreatExchangeCredentials(Credentials):
    access_token: str = Field(pattern=r"^\d{4,}\|[A-Za-z0-9_\-]{8,}$", max_length=500, repr=False)


def _graph_error(response: httpx.Response, body: Any) -> ExchangeError | None:
    """Graph answers most failures with HTTP 400 and an ``error`` object: read its type and code."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    code, kind = error.get("code"), error.get("type")
    detail = {"status": response.status_code, "graph_code": code, "graph_type": kind}
    if code in RATE_LIMIT_CODES:
        wait = retry_after(response.headers.get("Retry-After"))
        return ExchangeError(
            "exchange.rate_limited", f"ThreatExchange is rate limiting us (Graph code {code})",
            retryable=True, retry_after=wait, detail={**detail, "retry_after": wait},
        )  # fmt: skip
    if code in AUTH_CODES or kind == "OAuthException":
        return ExchangeError(
            "exchange.auth", f"ThreatExchange refused the access token ({kind} {code})", retryable=False, detail=detail
        )
    return None


class ThreatExchangeExchange(Exchange):
    name: ClassVar[str] = "threatexchange"
    title: ClassVar[str] = "ThreatExchange"
    settings_model = ThreatExchangeSettings
    credentials_model = ThreatExchangeCredentials
    accepts_feedback = True
    default_every = 3600

    settings: ThreatExchangeSettings
    #: Where "now" comes from (Unix seconds): each round reads every group up to the moment it began.
    clock: Callable[[], float] = staticmethod(time.time)

    def _token(self) -> str:
        if not isinstance(self.credentials, ThreatExchangeCredentials):
            raise ExchangeError("exchange.auth", "ThreatExchange needs an app access token", retryable=False)
        return self.credentials.access_token

    def _http(self) -> JsonHttp:
        return JsonHttp(self, self.settings.base_url, title=self.title, classify=_graph_error, secrets=(self._token(),))

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        groups = dict((checkpoint or {}).get("groups") or {})
        now = int(self.clock())
        pages = 0
        order = [str(g) for g in self.settings.privacy_groups]
        with self._http() as http:
            for index, group in enumerate(order):
                window = self._window(groups.get(group), now)
                while True:
                    if pages >= self.settings.max_pages:
                        return
                    pages += 1
                    builder = BatchBuilder(TYPE_MAP)
                    cursor = self._page(http, group, window, builder)
                    groups[group] = {**window, "after": cursor} if cursor else {"since": window["until"]}
                    done = cursor is None and index == len(order) - 1
                    yield builder.batch({"groups": dict(groups)}, done=done)
                    if cursor is None:
                        break
                    window = groups[group]

    @staticmethod
    def _window(state: object, now: int) -> dict:
        """The window a group is read in: resumed as stored, or from its last stop up to now."""
        if state is None:
            return {"since": 0, "until": now}
        if not isinstance(state, dict) or not isinstance(state.get("since"), int):
            raise ExchangeError("exchange.protocol", f"unreadable ThreatExchange checkpoint {state!r}", retryable=False)
        if isinstance(state.get("until"), int):
            return state
        return {"since": state["since"], "until": max(now, state["since"])}

    def _page(self, http: JsonHttp, group: str, window: dict, builder: BatchBuilder) -> str | None:
        """Reads one page into ``builder``; answers the cursor of the next page, ``None`` after the last."""
        params: dict = {
            "access_token": self._token(),
            "start_time": window["since"],
            "stop_time": window["until"],
            "limit": self.settings.page_size,
            "fields": FIELDS,
        }
        if self.settings.types:
            params["types"] = ",".join(self.settings.types)
        if window.get("after"):
            params["after"] = window["after"]
        page = http.request("GET", f"{group}/threat_updates/", params=params)
        data, paging = page.get("data"), page.get("paging") or {}
        if not isinstance(data, list) or not isinstance(paging, dict):
            raise ExchangeError(
                "exchange.protocol", "ThreatExchange threat_updates answer has no data list", retryable=False
            )
        for update in data:
            self._read_update(builder, update)
        if not paging.get("next") or not data:
            return None
        cursor = (paging.get("cursors") or {}).get("after") or _after_from(paging["next"])
        if not isinstance(cursor, str) or not cursor:
            raise ExchangeError(
                "exchange.protocol", "ThreatExchange gave a next page without a cursor", retryable=False
            )
        return cursor

    def check(self) -> None:
        """One empty window per privacy group: proves the token and the app's membership of each group."""
        now = int(self.clock())
        with self._http() as http:
            for group in self.settings.privacy_groups:
                params = {
                    "access_token": self._token(),
                    "start_time": now,
                    "stop_time": now,
                    "limit": 1,
                    "fields": "id",
                }
                http.request("GET", f"{group}/threat_updates/", params=params)

    def send_feedback(self, opinion: Opinion) -> None:
        if not opinion.external_id or not opinion.external_id.isdigit():
            raise ExchangeError(
                "exchange.not_supported", "ThreatExchange feedback needs the indicator id the entry came with",
                retryable=False,
            )  # fmt: skip
        token = self._token()
        own_app = token.partition("|")[0]
        with self._http() as http:
            answer = http.request(
                "GET", opinion.external_id, params={"access_token": token, "fields": "descriptors{id,owner{id}}"}
            )
            descriptors = answer.get("descriptors")
            items = descriptors.get("data") if isinstance(descriptors, dict) else None
            if not isinstance(items, list):
                raise ExchangeError(
                    "exchange.protocol", "ThreatExchange indicator has no descriptors list", retryable=False
                )
            others = [
                str(d["id"]) for d in items
                if isinstance(d, dict) and str(d.get("id", "")).isdigit()
                and str((d.get("owner") or {}).get("id")) != own_app
            ][:MAX_REACTIONS]  # fmt: skip
            if not others:
                raise ExchangeError(
                    "exchange.rejected",
                    f"ThreatExchange indicator {opinion.external_id} has no descriptor to react to",
                    retryable=False,
                )  # fmt: skip
            for descriptor in others:
                result = http.request(
                    "POST", descriptor, params={"access_token": token}, data={"reactions": REACTIONS[opinion.verdict]}
                )
                if result.get("success") is not True:
                    raise ExchangeError(
                        "exchange.rejected", f"ThreatExchange did not take the reaction on descriptor {descriptor}",
                        retryable=False,
                    )  # fmt: skip

    @staticmethod
    def _read_update(builder: BatchBuilder, update: object) -> None:
        if not isinstance(update, dict) or not isinstance(update.get("id"), str | int):
            builder.bad(f"a threat update has no id: {str(update)[:200]}")
            return
        ext = str(update["id"])
        descriptors = update.get("descriptors")
        if update.get("should_delete") is True or descriptors is None:
            builder.delete(tombstone(ext))
            return
        kind, indicator = update.get("type"), update.get("indicator")
        items = descriptors.get("data") if isinstance(descriptors, dict) else None
        if not isinstance(kind, str) or not isinstance(items, list):
            builder.bad(f"threat update {ext} lacks its type or descriptors")
            return
        tags: set[str] = set()
        statuses: set[str] = set()
        for item in items:
            if isinstance(item, dict):
                tags.update(t for t in _tags(item.get("tags")) if isinstance(t, str))
                if isinstance(item.get("status"), str):
                    statuses.add(item["status"])
        metadata = {"tags": sorted(tags)[:MAX_TAGS], "statuses": sorted(statuses), "descriptors": len(items)}
        builder.add(kind, indicator, ext, metadata=metadata)


def _tags(tags: object) -> list:
    """Descriptor tags come as a list of names or as a Graph edge ``{data: [{text}]}``."""
    if isinstance(tags, dict):
        return [t.get("text") for t in tags.get("data") or [] if isinstance(t, dict)]
    return tags if isinstance(tags, list) else []


def _after_from(next_url: object) -> str | None:
    """The ``after`` cursor inside a Graph ``next`` URL (used when ``paging.cursors`` is absent)."""
    if not isinstance(next_url, str):
        return None
    values = parse_qs(urlsplit(next_url).query).get("after")
    return values[0] if values else None
