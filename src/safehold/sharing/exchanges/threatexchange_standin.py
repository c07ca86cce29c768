"""A local stand-in for ThreatExchange's ``/{privacy_group}/threat_updates/`` Graph API edge::

    standin = ThreatExchangeStandIn(tokens={"1234567890|a-test-app-secret"})
    url = standin.start()                          # http://127.0.0.1:<port>/v26.0
    indicator = standin.add(303, "HASH_PDQ", "f" * 64, tags=["benign_test"])
    standin.delete(303, indicator)                 # every descriptor gone: should_delete

Like Graph it takes the app token in ``access_token`` (an unknown one answers HTTP 400 with an ``OAuthException``,
code 190), lists a group's updates with ``start_time <= last_updated < stop_time`` in ``last_updated`` order,
``limit`` per page, continued by ``paging.cursors.after`` and a ``paging.next`` URL (which repeats the token and the
query, as Graph's does). An unknown group answers code 100. :meth:`add_raw` serves an update as given (malformed
records); ``scramble`` serves each page out of time order; Graph-style rate limits are
``fail(400, body=graph_error(4))``. ``GET /{indicator}`` answers its descriptors and ``POST /{descriptor}`` with
``reactions=`` records a reaction in :attr:`reactions` (the feedback received). Changes get ``last_updated`` from
``clock`` (Unix seconds; tests pass one that ticks, and give the same to the exchange so that "up to now" means the
same on both sides).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from safehold.outbound.standin import JsonStandIn, Reply, Request

VERSION = "/v26.0"
MAX_LIMIT = 1000
#: The app that shares descriptors unless a test says otherwise (not the client's own app).
PARTNER_APP = 2222222222
REACTION_TYPES = frozenset(
    {"HELPFUL", "NOT_HELPFUL", "OUTDATED", "SAW_THIS_TOO", "WANT_MORE_INFO", "DISAGREE_WITH_TAGS", "INGESTED"}
)


def graph_error(code: int, kind: str = "OAuthException", message: str = "error") -> dict:
    """A Graph API error body."""
    return {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "standin"}}


class ThreatExchangeStandIn(JsonStandIn):
    label = "threatexchange-standin"
    prefix = VERSION

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        app_id: int = 1234567890,
        scramble: bool = False,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__()
        self.tokens = tokens if tokens is not None else {f"{app_id}|a-test-app-secret"}
        self.app_id = app_id
        self.scramble = scramble
        self.groups: dict[int, dict[str, dict]] = {}
        self.reactions: list[tuple[str, str, str]] = []  # (descriptor id, reaction, reacting app id)
        self._ids = itertools.count(10_000_001)
        self.clock = clock

    # ------------------------------------------------------------------------------------------------ state

    def group(self, group: int) -> dict[str, dict]:
        with self._lock:
            return self.groups.setdefault(group, {})

    def add(self, group: int, kind: str, indicator: str, *, tags: list[str] | None = None,
            status: str = "MALICIOUS", owner: int = PARTNER_APP) -> str:  # fmt: skip
        """A descriptor of ``indicator`` shared in ``group`` by app ``owner``; answers the indicator id."""
        with self._lock:
            updates = self.group(group)
            same = [u for u in updates.values() if u.get("indicator") == indicator and u.get("type") == kind]
            ident = same[0]["id"] if same else str(next(self._ids))
            earlier = same[0].get("descriptors", {}).get("data", []) if same else []
            descriptor = {"id": str(next(self._ids)), "owner": {"id": str(owner)}, "status": status,
                          "tags": list(tags or []), "added_on": "2026-01-01T00:00:00+0000"}  # fmt: skip
            updates[ident] = {
                "id": ident, "indicator": indicator, "type": kind, "last_updated": int(self.clock()),
                "should_delete": False,
                "descriptors": {"data": [*earlier, descriptor]},
            }  # fmt: skip
            return ident

    def delete(self, group: int, ident: str) -> None:
        """Every descriptor of the indicator was deleted or left the group."""
        with self._lock:
            update = self.group(group)[ident]
            self.group(group)[ident] = {**update, "should_delete": True, "last_updated": int(self.clock())}
            self.group(group)[ident].pop("descriptors", None)

    def add_raw(self, group: int, update: dict, key: str) -> None:
        """Serve ``update`` as given (it gets a ``last_updated``)."""
        with self._lock:
            self.group(group)[key] = {**update, "last_updated": int(self.clock())}

    # ------------------------------------------------------------------------------------------------ protocol

    def route(self, request: Request) -> Reply:
        parts = request.path.removeprefix(VERSION).strip("/").split("/")
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"))) if request.method == "POST" else {}
        token = form.get("access_token") or request.query.get("access_token")
        if not parts[0].isdigit() or len(parts) > 2:
            return Reply(400, graph_error(100, "GraphMethodException", "Unsupported request"))
        if token not in self.tokens:
            return Reply(400, graph_error(190, message="Invalid OAuth access token."))
        if len(parts) == 1 and request.method == "GET":
            return self._indicator(parts[0])
        if len(parts) == 1 and request.method == "POST":
            return self._react(parts[0], {**request.query, **form}, token.partition("|")[0])
        if request.method != "GET" or parts[1] != "threat_updates":
            return Reply(400, graph_error(100, "GraphMethodException", "Unsupported request"))
        group = int(parts[0])
        if group not in self.groups:
            return Reply(400, graph_error(100, "GraphMethodException", "Unsupported get request"))
        try:
            start = int(request.query.get("start_time") or 0)
            stop = int(request.query["stop_time"]) if request.query.get("stop_time") else None
            limit = min(int(request.query.get("limit") or 25), MAX_LIMIT)
            after = _cursor(request.query["after"]) if request.query.get("after") else None
        except (ValueError, binascii.Error):
            return Reply(400, graph_error(100, "OAuthException", "Invalid parameter"))
        types = set(filter(None, request.query.get("types", "").split(",")))
        listed = sorted(
            ((u["last_updated"], u["id"] if isinstance(u.get("id"), str) else key), u)
            for key, u in self.groups[group].items()
            if start <= u["last_updated"] and (stop is None or u["last_updated"] < stop)
            and (not types or u.get("type") in types)
        )  # fmt: skip
        if after is not None:
            listed = [item for item in listed if item[0] > after]
        page, more = listed[:limit], len(listed) > limit
        data = [u for _, u in page]
        if self.scramble:
            data.reverse()
        body: dict = {"data": data}
        if page:
            cursors = {"before": _encode(page[0][0]), "after": _encode(page[-1][0])}
            body["paging"] = {"cursors": cursors}
            if more:
                query = {**request.query, "after": cursors["after"]}
                body["paging"]["next"] = f"{self.url}/{group}/threat_updates/?{urlencode(query)}"
        return Reply(200, body)

    def _indicator(self, ident: str) -> Reply:
        for updates in self.groups.values():
            if ident in updates and "descriptors" in updates[ident]:
                return Reply(200, {"id": ident, "descriptors": updates[ident]["descriptors"]})
        return Reply(400, graph_error(100, "GraphMethodException", f"Object with ID '{ident}' does not exist"))

    def _react(self, descriptor_id: str, params: dict[str, str], app: str) -> Reply:
        reactions = [r for r in params.get("reactions", "").split(",") if r]
        if not reactions or not set(reactions) <= REACTION_TYPES:
            return Reply(400, graph_error(100, "OAuthException", "Invalid reaction"))
        for updates in self.groups.values():
            for update in updates.values():
                for descriptor in (update.get("descriptors") or {}).get("data", []):
                    if descriptor["id"] == descriptor_id:
                        self.reactions.extend((descriptor_id, r, app) for r in reactions)
                        return Reply(200, {"success": True})
        return Reply(400, graph_error(100, "GraphMethodException", f"Object with ID '{descriptor_id}' does not exist"))


def _encode(key: tuple) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _cursor(text: str) -> tuple:
    key = json.loads(base64.urlsafe_b64decode(text.encode()))
    if not isinstance(key, list) or len(key) != 2:
        raise ValueError("bad cursor")
    return tuple(key)
