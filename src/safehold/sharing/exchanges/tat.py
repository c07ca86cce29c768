"""Tech Against Terrorism: the TCAP (Terrorist Content Analytics Platform) hash list of terrorist content.

The protocol: ``POST {base}/token-auth/tcap/`` with the account's ``username`` and ``password`` answers a
short-lived JWT (``{token}``), sent as ``Authorization: Bearer``. ``GET {base}/hash-list/v2/all?ideology=&limit=&order=
asc&after=`` answers ``{count, next, previous, checkpoint, results: [{id, hash_digest, algorithm, ideology,
file_type, deleted, updated_on, created_on}]}`` ordered by update time; ``checkpoint`` (``"<updated_on>,<id>"`` of the
page's last entry) passed back as ``after`` continues after it. An entry with ``deleted`` true must be removed.

We page by ``after`` alone (never by ``offset``, which shifts when the list changes while we read), so the
checkpoint is simply ``{"after": "<checkpoint>"}`` and a resumed round continues exactly where the stored one
stopped. A token refused mid-round (it expired) is renewed once. TCAP's feedback API is not used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from safehold.sharing.base import Credentials, Exchange, ExchangeError, FetchBatch, Settings, tombstone
from safehold.sharing.exchanges._http import BatchBuilder, JsonHttp, url_setting

#: TCAP algorithms → Safehold signal types. ``MD5``/``SHA256`` are of the file's bytes, as Safehold's are;
#: ``SHA512`` and ``TMK`` have no Safehold type and are kept as unknown.
TYPE_MAP = {"PDQ": "pdq", "MD5": "md5", "SHA256": "sha256"}
AUTH_PATH = "token-auth/tcap/"


class TATSettings(Settings):
    base_url: str = Field("https://app.terrorismanalytics.org", max_length=500)
    list_path: str = Field("hash-list/v2/all", pattern=r"^[a-z0-9/_.-]{1,200}$")
    ideology: Literal["all", "islamist", "far-right"] = "all"
    page_size: int = Field(1000, ge=1, le=1000)
    max_pages: int = Field(1000, ge=1, le=100_000, description="pages read per round; the next round goes on")

    _safe_url = field_validator("base_url")(url_setting)


class TATCredentials(Credentials):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=500, repr=False)


class TATExchange(Exchange):
    name: ClassVar[str] = "tat"
    title: ClassVar[str] = "Tech Against Terrorism"
    settings_model = TATSettings
    credentials_model = TATCredentials
    default_every = 3600

    settings: TATSettings

    def _http(self) -> JsonHttp:
        if not isinstance(self.credentials, TATCredentials):
            raise ExchangeError("exchange.auth", "TCAP needs a username and password", retryable=False)
        return JsonHttp(self, self.settings.base_url, title=self.title, secrets=(self.credentials.password,))

    def _token(self, http: JsonHttp) -> str:
        creds = self.credentials
        try:
            answer = http.request("POST", AUTH_PATH, data={"username": creds.username, "password": creds.password})
        except ExchangeError as exc:
            if exc.detail.get("status") in (400, 401, 403):
                raise ExchangeError(
                    "exchange.auth", f"TCAP refused the username or password (HTTP {exc.detail['status']})",
                    retryable=False, detail=exc.detail,
                ) from None  # fmt: skip
            raise
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise ExchangeError("exchange.protocol", "TCAP's token-auth answer has no token", retryable=False)
        return token

    def check(self) -> None:
        """A token proves the username and password."""
        with self._http() as http:
            self._token(http)

    def fetch(self, checkpoint: dict | None) -> Iterator[FetchBatch]:
        after = (checkpoint or {}).get("after", "")
        if not isinstance(after, str):
            raise ExchangeError("exchange.protocol", f"unreadable TCAP checkpoint {checkpoint!r}", retryable=False)
        with self._http() as http:
            token = self._token(http)
            for _ in range(self.settings.max_pages):
                try:
                    page = self._page(http, token, after)
                except ExchangeError as exc:
                    if exc.code != "exchange.auth":
                        raise
                    token = self._token(http)  # the JWT expired mid-round: one new one
                    page = self._page(http, token, after)
                batch = self._read_page(page, after)
                yield batch
                if batch.done:
                    return
                after = batch.checkpoint["after"]

    def _page(self, http: JsonHttp, token: str, after: str) -> dict:
        params = {"ideology": self.settings.ideology, "limit": self.settings.page_size, "order": "asc", "after": after}
        return http.request("GET", self.settings.list_path, params=params, headers={"Authorization": f"Bearer {token}"})

    @staticmethod
    def _read_page(page: dict, after: str) -> FetchBatch:
        results, checkpoint = page.get("results"), page.get("checkpoint")
        if not isinstance(results, list) or not (checkpoint is None or isinstance(checkpoint, str)):
            raise ExchangeError("exchange.protocol", "TCAP hash list answer has no results list", retryable=False)
        builder = BatchBuilder(TYPE_MAP)
        for entry in results:
            _read_entry(builder, entry)
        more = bool(page.get("next")) and bool(results)
        if more and (not checkpoint or checkpoint == after):
            raise ExchangeError("exchange.protocol", "TCAP gave a next page but no new checkpoint", retryable=False)
        return builder.batch({"after": checkpoint or after}, done=not more)


def _read_entry(builder: BatchBuilder, entry: object) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), int | str) or entry.get("id") == "":
        builder.bad(f"a hash list entry has no id: {str(entry)[:200]}")
        return
    ext = str(entry["id"])
    if entry.get("deleted") is True:
        builder.delete(tombstone(ext))
        return
    algorithm = entry.get("algorithm")
    if not isinstance(algorithm, str):
        builder.bad(f"hash list entry {ext} has no algorithm")
        return
    metadata = {k: entry[k] for k in ("ideology", "file_type") if isinstance(entry.get(k), str)}
    builder.add(algorithm.upper(), entry.get("hash_digest"), ext, metadata=metadata)
