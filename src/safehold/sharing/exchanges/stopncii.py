"""StopNCII.org: hashes of intimate images that people submitted to be kept off platforms, and feedback on them.

The protocol (StopNCII's REST API behind Azure API Management): every request carries the subscription key
(``Ocp-Apim-Subscription-Key``) and the function key of its endpoint (``x-functions-key``).

* ``GET FetchHashes?startTimestamp=&pageSize=&nextPageToken=`` answers ``{count, nextPageToken, nextSetTimestamp,
  hasMoreRecords, hashRecords: [{lastModtimestamp, signalType, hashValue, hashStatus, caseNumbers, CSPFeedbacks}]}``.
  A record is the current snapshot of one (signalType, hashValue): a later record replaces an earlier one, and a
  ``hashStatus`` of ``Withdrawn`` or ``Deleted`` means the hash must be removed. The page token is a short-lived
  cursor; ``nextSetTimestamp`` on the last page is where the next round starts.
* ``POST SubmitFeedback`` with ``{count, hashFeedbacks: [{hashValue, feedbackValue, tags}]}`` tells StopNCII what a
  platform decided about a hash (``Blocked``: it was the intimate image; ``NotBlocked``: it was not).

Checkpoint: ``{"start_timestamp": t}`` between rounds, plus ``"page_token"`` in the middle of one. A page token the
API no longer accepts (HTTP 400) restarts the round from ``start_timestamp``: records are snapshots, so reading
some again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field, field_validator

from safehold.sharing.base import Credentials, Exchange, ExchangeError, FetchBatch, Opinion, Settings, tombstone
from safehold.sharing.exchanges._http import BatchBuilder, JsonHttp, url_setting

#: StopNCII's signal types → Safehold's. ``VideoMD5`` is the MD5 of the video file's bytes, which is what
#: Safehold's ``md5`` is for any file. ``VideoTMK``, ``Text`` and ``Unknown`` have no Safehold type: kept as unknown.
TYPE_MAP = {"ImagePDQ": "pdq", "VideoMD5": "md5", "URL": "url"}
#: Safehold's signal types → StopNCII's (for feedback).
FEEDBACK_TYPES = {"pdq": "ImagePDQ", "md5": "VideoMD5", "url": "URL"}
REMOVED_STATUSES = frozenset({"Withdrawn", "Deleted"})
FEEDBACK_VALUES = {"true_positive": "Blocked", "false_positive": "NotBlocked"}
MAX_TAGS = 8
MAX_TAG_CHARS = 64


class StopNCIISettings(Settings):
    base_url: str = Field("https://api.stopncii.org/v1", max_length=500)
    page_size: int = Field(800, ge=1, le=1000, description="records asked per FetchHashes call")
    max_pages: int = Field(1000, ge=1, le=100_000, description="pages read per round; the next round goes on")
    start_timestamp: int = Field(10, ge=0, description="where the very first round starts (Unix seconds)")

    _safe_url = field_validator("base_url")(url_setting)


class StopNCIICredentials(Credentials):
    subscription_key: str = Field(min_length=1, max_length=500, repr=False)
    fetch_function_key: str = Field(min_length=1, max_length=500, repr=False)
    feedback_function_key: str | None = Field(None, min_length=1, max_length=500, repr=False)


def external_id(signal_type: str, value: str) -> str:
    """StopNCII has no entry ids: an entry is its (signalType, hashValue)."""
    return f"{signal_type}:{value.strip().lower()}"


class StopNCIIExchange(Exchange):
    name: ClassVar[str] = "stopncii"
    title: ClassVar[str] = "StopNCII"
    settings_model = StopNCIISettings
    credentials_model = StopNCIICredentials
    accepts_feedback = True
    default_every = 3600

    settings: StopNCIISettings
    credentials: StopNCIICredentials

    def _keys(self) -> StopNCIICredentials:
        if not isinstance(self.credentials, StopNCIICredentials):
            raise ExchangeError("exchange.auth", "StopNCII needs a subscription key and function keys", retryable=False)
        return self.credentials

    def _http(self, function_key: str) -> JsonHttp:
        headers = {"Ocp-Apim-Subscription-Key": self._keys().subscription_key, "x-functions-key": function_key}
        return JsonHttp(self, self.settings.base_url, title=self.title, headers=headers)

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        checkpoint = checkpoint or {}
        start = checkpoint.get("start_timestamp", self.settings.start_timestamp)
        token = checkpoint.get("page_token")
        if not isinstance(start, int) or not (token is None or isinstance(token, str)):
            raise ExchangeError("exchange.protocol", f"unreadable StopNCII checkpoint {checkpoint!r}", retryable=False)
        with self._http(self._keys().fetch_function_key) as http:
            for _ in range(self.settings.max_pages):
                batch = self._read_page(self._page(http, start, token), start)
                yield batch
                if batch.done:
                    return
                token = batch.checkpoint["page_token"]

    def _page(self, http: JsonHttp, start: int, token: str | None) -> dict:
        params: dict = {"startTimestamp": start, "pageSize": self.settings.page_size}
        if token:
            params["nextPageToken"] = token
        try:
            return http.request("GET", "FetchHashes", params=params)
        except ExchangeError as exc:
            if not token or exc.detail.get("status") != 400:
                raise
        # The cursor expired: read the round again from its start (records are snapshots, repeats are harmless).
        return http.request("GET", "FetchHashes", params={"startTimestamp": start, "pageSize": self.settings.page_size})

    def _read_page(self, page: dict, start: int) -> FetchBatch:
        records, more = page.get("hashRecords"), page.get("hasMoreRecords")
        token, next_start = page.get("nextPageToken"), page.get("nextSetTimestamp")
        if not isinstance(records, list) or not isinstance(more, bool) or (more and not isinstance(token, str)):
            raise ExchangeError(
                "exchange.protocol", "StopNCII FetchHashes answer lacks hashRecords, hasMoreRecords or its page token",
                retryable=False,
            )  # fmt: skip
        if not more and not isinstance(next_start, int):
            raise ExchangeError("exchange.protocol", "StopNCII's last page has no nextSetTimestamp", retryable=False)
        builder = BatchBuilder(TYPE_MAP)
        for record in records:
            self._read_record(builder, record)
        if more:
            return builder.batch({"start_timestamp": start, "page_token": token}, done=False)
        return builder.batch({"start_timestamp": max(start, next_start)}, done=True)

    @staticmethod
    def _read_record(builder: BatchBuilder, record: object) -> None:
        if not isinstance(record, dict):
            builder.bad("a hash record is not a JSON object")
            return
        kind, value, status = record.get("signalType"), record.get("hashValue"), record.get("hashStatus")
        if not isinstance(kind, str) or not isinstance(value, str) or not value or not isinstance(status, str):
            builder.bad(f"a hash record lacks signalType, hashValue or hashStatus: {str(record)[:200]}")
            return
        ext = external_id(kind, value)
        if status in REMOVED_STATUSES:
            builder.delete(tombstone(ext))
            return
        feedbacks = record.get("CSPFeedbacks")
        cases = record.get("caseNumbers")
        metadata = {
            "status": status,
            "cases": len(cases) if isinstance(cases, dict | list) else 0,
            "feedbacks": len(feedbacks) if isinstance(feedbacks, list) else 0,
        }
        builder.add(kind, value, ext, metadata=metadata)

    def check(self) -> None:
        """One record from now on: proves the subscription and fetch keys."""
        with self._http(self._keys().fetch_function_key) as http:
            http.request("GET", "FetchHashes", params={"startTimestamp": 2**31 - 1, "pageSize": 1})

    def send_feedback(self, opinion: Opinion) -> None:
        key = self._keys().feedback_function_key
        if not key:
            raise ExchangeError(
                "exchange.not_supported",
                "StopNCII feedback needs the SubmitFeedback function key (feedback_function_key)",
                retryable=False,
            )  # fmt: skip
        if opinion.signal_type not in FEEDBACK_TYPES:
            raise ExchangeError(
                "exchange.not_supported", f"StopNCII has no {opinion.signal_type} hashes to give feedback on",
                retryable=False,
            )  # fmt: skip
        tags = [t[:MAX_TAG_CHARS] for t in (opinion.reason, opinion.category) if t][:MAX_TAGS]
        body = {
            "count": 1,
            "hashFeedbacks": [
                {"hashValue": opinion.value, "feedbackValue": FEEDBACK_VALUES[opinion.verdict], "tags": tags}
            ],
        }
        with self._http(key) as http:
            try:
                http.request("POST", "SubmitFeedback", json=body)
            except ExchangeError as exc:
                if exc.code == "exchange.protocol" and exc.detail.get("status") in (400, 404, 409, 422):
                    raise ExchangeError(
                        "exchange.rejected", f"StopNCII refused the feedback (HTTP {exc.detail['status']})",
                        retryable=False, detail=exc.detail,
                    ) from None  # fmt: skip
                raise
