"""A local stand-in for Tech Against Terrorism's TCAP hash list API (``token-auth/tcap/``, ``hash-list/v2/all``)::

    standin = TATStandIn(users={"platform": "secret"})
    url = standin.start()                                 # http://127.0.0.1:<port>/
    entry = standin.add("PDQ", "f" * 64, ideology="far-right", file_type="jpg")
    standin.delete(entry)                                 # listed again with deleted: true

``POST token-auth/tcap/`` (form or JSON ``username``/``password``) answers ``{token, user}`` or HTTP 400 for wrong
credentials. The list (also served under ``api/hash-list/v2/all``, the path python-threatexchange uses) wants
``Authorization: Bearer <token>`` (401 otherwise; :meth:`expire_tokens` invalidates every token issued), filters by
``ideology``, orders by ``(updated_on, id)``, continues after ``after="<updated_on>,<id>"`` and pages by ``limit``
and ``offset`` with a ``next`` URL, answering the ``checkpoint`` of the page's last entry. :meth:`add_raw` serves an
entry as given; ``scramble`` serves each page out of order. Faults come from the base stand-in.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from safehold.outbound.standin import JsonStandIn, Reply, Request

LIST_PATHS = ("/hash-list/v2/all", "/api/hash-list/v2/all")
MAX_LIMIT = 1000


class TATStandIn(JsonStandIn):
    label = "tat-standin"
    prefix = "/"

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        default_limit: int = 1000,
        clock: Callable[[], float] = time.time,
        scramble: bool = False,
    ):
        super().__init__()
        self.users = users if users is not None else {"platform": "tcap-test-password"}
        self.default_limit = default_limit
        self.clock = clock
        self.scramble = scramble
        self.entries: dict[str, dict] = {}
        self.tokens: set[str] = set()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------------------ state

    def add(self, algorithm: str, digest: str, *, ideology: str = "islamist", file_type: str = "jpg") -> int:
        with self._lock:
            ident = next(self._ids)
            now = self.clock()
            self.entries[str(ident)] = {
                "id": ident, "hash_digest": digest, "algorithm": algorithm, "ideology": ideology,
                "file_type": file_type, "deleted": False, "updated_on": now,
                "created_on": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
            }  # fmt: skip
            return ident

    def delete(self, ident: int) -> None:
        with self._lock:
            entry = self.entries[str(ident)]
            entry.update(deleted=True, updated_on=self.clock())

    def add_raw(self, entry: dict, key: str) -> None:
        """Serve ``entry`` as given; it gets an ``updated_on`` (and an ``id`` to order by only if it has none)."""
        with self._lock:
            self.entries[key] = {**entry, "updated_on": self.clock()}

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    # ------------------------------------------------------------------------------------------------ protocol

    def route(self, request: Request) -> Reply:
        if request.path == "/token-auth/tcap/" and request.method == "POST":
            return self._authenticate(request)
        if request.path.rstrip("/") in LIST_PATHS and request.method == "GET":
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
                return Reply(401, {"detail": "Given token not valid for any token type"})
            return self._list(request)
        return Reply(404, {"detail": "Not found."})

    def _authenticate(self, request: Request) -> Reply:
        form = request.json() if request.headers.get("content-type", "").startswith("application/json") else None
        if form is None:
            form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        user, password = form.get("username"), form.get("password")
        if not user or self.users.get(user) != password:
            return Reply(400, {"non_field_errors": ["Unable to log in with provided credentials."]})
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return Reply(200, {"token": token, "user": {"username": user}})

    def _list(self, request: Request) -> Reply:
        q = request.query
        try:
            limit = min(int(q.get("limit") or self.default_limit), MAX_LIMIT)
            offset = int(q.get("offset") or 0)
            after = _key(q["after"]) if q.get("after") else None
        except ValueError:
            return Reply(400, {"detail": "invalid limit, offset or after"})
        ideology = q.get("ideology") or "all"
        listed = sorted(
            ((float(e["updated_on"]), int(e["id"]) if str(e.get("id", "")).isdigit() else 0), e)
            for e in self.entries.values()
            if ideology == "all" or e.get("ideology") == ideology
        )
        if after is not None:
            listed = [item for item in listed if item[0] > after]
        if q.get("order") == "desc":
            listed.reverse()
        page = listed[offset : offset + limit]
        more = offset + limit < len(listed)
        results = [e for _, e in page]
        if self.scramble:
            results.reverse()
        base = self.url.rstrip("/") + request.path
        query = {"ideology": ideology, "limit": limit, "offset": offset + limit, "order": q.get("order") or "asc",
                 "after": q.get("after") or ""}  # fmt: skip
        next_url = f"{base}?{urlencode(query)}" if more else None
        checkpoint = f"{page[-1][0][0]},{page[-1][0][1]}" if page else ""
        return Reply(
            200,
            {"count": len(listed), "next": next_url, "previous": None, "checkpoint": checkpoint, "results": results},
        )


def _key(text: str) -> tuple[float, int]:
    stamp, _, ident = text.partition(",")
    return float(stamp), int(ident or 0)
