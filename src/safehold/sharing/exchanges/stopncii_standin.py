"""A local stand-in for StopNCII's hash API (``FetchHashes``, ``SubmitFeedback``), for tests and rehearsals::

    standin = StopNCIIStandIn()
    url = standin.start()                  # http://127.0.0.1:<port>/v1
    standin.add("ImagePDQ", "f" * 64)      # a hash, as a person's case would bring it
    standin.remove("ImagePDQ", "f" * 64)   # the person withdrew it
    ...
    standin.feedback                       # what platforms said (SubmitFeedback bodies, one entry per hash)

Like the real API it wants ``Ocp-Apim-Subscription-Key`` on every call (401 without it) and the endpoint's own
``x-functions-key`` (401 for a wrong one). ``FetchHashes`` lists the records modified at or after
``startTimestamp`` and before the moment the listing began (``nextSetTimestamp``), ordered by modification time
and continued by an opaque ``nextPageToken``; a change made while a client pages shows up in its next round.
:meth:`expire_tokens` makes every issued token invalid (HTTP 400), :meth:`add_raw` serves a record as given (to
test malformed records) and ``scramble`` serves each page's records out of time order. Faults (5xx, 429 with
``Retry-After``, dropped connections) come from :class:`~safehold.outbound.standin.JsonStandIn`.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
from collections.abc import Callable

from safehold.outbound.standin import JsonStandIn, Reply, Request

PREFIX = "/v1"
FEEDBACK_VALUES = frozenset(
    {"Unknown", "None", "QualityUnknown", "PendingReview", "Blocked", "NotBlocked", "Withdrawn", "Deleted"}
)
MAX_PAGE = 1000


class StopNCIIStandIn(JsonStandIn):
    label = "stopncii-standin"
    prefix = PREFIX

    def __init__(
        self,
        *,
        subscription_key: str = "sub-key",
        fetch_key: str = "fetch-key",
        feedback_key: str = "feedback-key",
        clock: Callable[[], int] | None = None,
        scramble: bool = False,
    ):
        super().__init__()
        self.subscription_key = subscription_key
        self.keys = {"FetchHashes": fetch_key, "SubmitFeedback": feedback_key}
        self.scramble = scramble
        # By default every change gets a later second than the previous one, so tests never depend on the wall clock.
        ticks = itertools.count(int(time.time()))
        self.clock = clock or (lambda: next(ticks))
        self.records: dict[tuple[str, str], dict] = {}
        self.feedback: list[dict] = []
        self._generation = 0

    # ------------------------------------------------------------------------------------------------ state

    def add(self, signal_type: str, value: str, *, status: str = "Active", cases: int = 1) -> dict:
        """A hash (new or updated) as StopNCII would list it."""
        with self._lock:
            record = {
                "lastModtimestamp": self.clock(),
                "signalType": signal_type,
                "hashValue": value,
                "hashStatus": status,
                "caseNumbers": {f"case-{i}": status for i in range(cases)},
                "CSPFeedbacks": self.records.get((signal_type, value), {}).get("CSPFeedbacks", []),
            }
            self.records[(signal_type, value)] = record
            return record

    def remove(self, signal_type: str, value: str, *, status: str = "Withdrawn") -> dict:
        """The person withdrew the hash (or StopNCII deleted it): listed again with that status."""
        return self.add(signal_type, value, status=status, cases=0)

    def add_raw(self, record: dict, key: str) -> None:
        """Serve ``record`` as it is (under ``key``), e.g. one lacking fields; it gets a modification time."""
        with self._lock:
            self.records[("raw", key)] = {**record, "lastModtimestamp": self.clock()}

    def expire_tokens(self) -> None:
        """Every page token issued so far is refused from now on (StopNCII's cursors are short-lived)."""
        with self._lock:
            self._generation += 1

    # ------------------------------------------------------------------------------------------------ protocol

    def route(self, request: Request) -> Reply:
        endpoint = request.path.removeprefix(PREFIX + "/")
        if endpoint not in self.keys or not request.path.startswith(PREFIX + "/"):
            return Reply(404, {"statusCode": 404, "message": "Resource not found"})
        if request.headers.get("ocp-apim-subscription-key") != self.subscription_key:
            return Reply(401, {"statusCode": 401, "message": "Access denied due to invalid subscription key."})
        if request.headers.get("x-functions-key") != self.keys[endpoint]:
            return Reply(401, {"statusCode": 401, "message": "Unauthorized"})
        if endpoint == "FetchHashes" and request.method == "GET":
            return self._fetch(request)
        if endpoint == "SubmitFeedback" and request.method == "POST":
            return self._feedback(request)
        return Reply(405, {"statusCode": 405, "message": "Method not allowed"})

    def _fetch(self, request: Request) -> Reply:
        try:
            start = int(request.query.get("startTimestamp", "0"))
            size = min(int(request.query.get("pageSize", "800")), MAX_PAGE)
        except ValueError:
            return Reply(400, {"statusCode": 400, "message": "startTimestamp and pageSize must be integers"})
        if size < 1:
            return Reply(400, {"statusCode": 400, "message": "pageSize must be positive"})
        token = request.query.get("nextPageToken")
        if token:
            cursor = self._read_token(token)
            if cursor is None:
                return Reply(400, {"statusCode": 400, "message": "nextPageToken is invalid or expired"})
            until, after = cursor["until"], tuple(cursor["after"])
        else:
            until, after = self.clock(), None
        listed = sorted(
            (r["lastModtimestamp"], key[0], key[1], r)
            for key, r in self.records.items()
            if start <= r["lastModtimestamp"] < until
        )
        if after is not None:
            listed = [item for item in listed if item[:3] > after]
        page, more = listed[:size], len(listed) > size
        body = [item[3] for item in page]
        if self.scramble:
            body.reverse()
        next_token = self._token(until, page[-1][:3]) if more else None
        return Reply(
            200,
            {
                "count": len(body),
                "nextPageToken": next_token,
                "nextSetTimestamp": until,
                "hasMoreRecords": more,
                "hashRecords": body,
            },
        )

    def _token(self, until: int, after: tuple) -> str:
        raw = json.dumps({"g": self._generation, "until": until, "after": list(after)}).encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _read_token(self, token: str) -> dict | None:
        try:
            cursor = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(cursor, dict) or cursor.get("g") != self._generation:
            return None
        return cursor

    def _feedback(self, request: Request) -> Reply:
        body = request.json()
        items = body.get("hashFeedbacks") if isinstance(body, dict) else None
        if not isinstance(items, list) or body.get("count") != len(items):
            return Reply(400, {"statusCode": 400, "message": "count and hashFeedbacks do not agree"})
        for item in items:
            if not isinstance(item, dict) or item.get("feedbackValue") not in FEEDBACK_VALUES:
                return Reply(400, {"statusCode": 400, "message": "unknown feedbackValue"})
            known = [r for (kind, value), r in self.records.items() if value == item.get("hashValue")]
            if not known:
                return Reply(400, {"statusCode": 400, "message": "unknown hashValue"})
        for item in items:
            self.feedback.append(item)
            for (_kind, value), record in self.records.items():
                if value == item["hashValue"]:
                    record.setdefault("CSPFeedbacks", []).append(
                        {"feedbackValue": item["feedbackValue"], "tags": item.get("tags", []), "source": "platform"}
                    )
        return Reply(200, {"count": len(items)})
