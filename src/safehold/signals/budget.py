"""Process-wide bounds on work in flight: a weighted semaphore for decoded pixels and slots for video hashes.

A :class:`WorkBudget` has a capacity (pixels, or video hashes) shared by every thread of the process. A caller
reserves its weight *before* it decodes (the weight comes from the image header) and gives it back when the
hash is computed, so concurrency cannot multiply memory: 16 requests for 49-megapixel images take turns instead
of holding 16 decoded bitmaps at once. A caller that cannot get its share within ``wait`` seconds is refused with
``media.busy`` (HTTP 503, ``Retry-After``) rather than queueing for ever.

A weight larger than the whole capacity is clamped to the capacity, so such an image runs alone (the per-image
limit ``SAFEHOLD_MAX_IMAGE_PIXELS`` is what refuses images that are too large for any process).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from safehold.errors import SafeholdError


class WorkBudget:
    """A weighted, fair-enough semaphore with a bounded wait."""

    def __init__(self, capacity: int, *, wait: float = 3.0, what: str = "media", retry_after: int | None = None):
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.capacity = int(capacity)
        self.wait = max(0.0, float(wait))
        self.what = what
        self.retry_after = retry_after if retry_after is not None else max(1, math.ceil(self.wait) or 1)
        self._used = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        return self._used

    def acquire(self, weight: int, wait: float | None = None) -> int:
        """Reserve ``weight`` (clamped to ``1..capacity``); returns the weight reserved. Raises ``media.busy``."""
        weight = min(max(int(weight), 1), self.capacity)
        deadline = time.monotonic() + (self.wait if wait is None else wait)
        with self._cond:
            while self._used + weight > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise busy(
                        f"The server is {self.what} at capacity; try again shortly.",
                        self.retry_after,
                        what=self.what,
                    )
                self._cond.wait(left)
            self._used += weight
        return weight

    def release(self, weight: int) -> None:
        with self._cond:
            self._used = max(0, self._used - weight)
            self._cond.notify_all()

    @contextmanager
    def hold(self, weight: int, wait: float | None = None) -> Iterator[int]:
        got = self.acquire(weight, wait)
        try:
            yield got
        finally:
            self.release(got)


def busy(message: str, retry_after: int, **detail) -> SafeholdError:
    """503 ``media.busy`` with ``Retry-After``: the server's share is taken, the content is not at fault."""
    return SafeholdError(
        "media.busy",
        message,
        status=503,
        detail={"retry_after": retry_after, **detail},
        headers={"Retry-After": str(retry_after)},
    )
