"""How many URL fetches run at once: per caller and for the whole process.

A fetch holds a worker thread for as long as the remote server keeps it (up to ``SAFEHOLD_URL_FETCH_DEADLINE``),
so without a cap 40 slow URLs take every thread of the API's pool. :class:`FetchSlots` refuses at once — it never
queues — when the caller already has ``per_key`` fetches running (429 ``url.too_many_fetches``) or the process
has ``total`` (503 ``url.busy``), both with ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from safehold.errors import SafeholdError


class FetchSlots:
    def __init__(self, total: int, per_key: int, retry_after: float = 5.0):
        self.total = int(total)
        self.per_key = int(per_key)
        self.retry_after = max(1, math.ceil(retry_after))
        self._lock = threading.Lock()
        self._running = 0
        self._by_key: dict[str, int] = {}

    @property
    def running(self) -> int:
        return self._running

    @contextmanager
    def hold(self, key: str | None) -> Iterator[None]:
        key = key or ""
        headers = {"Retry-After": str(self.retry_after)}
        with self._lock:
            if self._by_key.get(key, 0) >= self.per_key:
                raise SafeholdError(
                    "url.too_many_fetches",
                    f"You already have {self.per_key} URL fetches running; wait for one to finish.",
                    status=429,
                    detail={"max_per_key": self.per_key, "retry_after": self.retry_after},
                    headers=headers,
                )
            if self._running >= self.total:
                raise SafeholdError(
                    "url.busy",
                    f"The server is already fetching {self.total} URLs; try again shortly.",
                    status=503,
                    detail={"max_concurrent": self.total, "retry_after": self.retry_after},
                    headers=headers,
                )
            self._running += 1
            self._by_key[key] = self._by_key.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                left = self._by_key[key] - 1
                if left:
                    self._by_key[key] = left
                else:
                    del self._by_key[key]
