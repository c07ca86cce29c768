"""Progressive back-off for callers that keep being refused (a tarpit), on the event loop.

Every limit in :mod:`safehold.api.limits` makes a hostile request cheap, but a client that loops without pause turns
whatever the server saves into more requests: the refusals themselves then take the cores from the callers that
behave. So each caller (API key, console session, or without either its client address) has a count of its recent
refusals, a leaky bucket: each refused answer adds one, and ``SAFEHOLD_TARPIT_FORGIVE_PER_SECOND`` drain away each
second. Past ``SAFEHOLD_TARPIT_FREE_REFUSALS`` the caller's next requests wait before any work is done on them —
``SAFEHOLD_TARPIT_FIRST_DELAY_SECONDS``, doubling with each refusal beyond, at most
``SAFEHOLD_TARPIT_MAX_DELAY_SECONDS`` — in an ``asyncio.sleep`` (no thread, no body read). A client that waits for
its answers before asking again then costs the server a request per delay instead of one per refusal; a caller
that is never refused is never delayed, whatever its neighbours on the same address do.

Bounded: at most :data:`MAX_CALLERS` callers are tracked (idle ones dropped first, then all: forgetting debts is the
safe failure), the count of a caller stops growing once it is at the longest delay (so it is forgiven soon after
it behaves, however long it misbehaved), and at most ``SAFEHOLD_TARPIT_MAX_PARKED`` requests wait at once: past
that a delayed caller's request is refused at once (429 ``rate.throttled``) rather than holding another connection.
"""

from __future__ import annotations

import asyncio
import math

#: Callers tracked at most (as for the rate buckets).
MAX_CALLERS = 100_000

#: The answers that count as a refusal: the request was out of bounds, malformed, unauthenticated or forbidden,
#: over a rate, or shed because the server is busy. Not 404 / 409 / 410: those answer a well-formed question.
REFUSED = frozenset({400, 401, 403, 405, 413, 414, 422, 429, 431, 503})


class Tarpit:
    """Refusal counts per caller and the delay they earn; one per process, the event loop its only user."""

    def __init__(self, free: int, forgive: float, first: float, longest: float, max_parked: int):
        self.free, self.forgive, self.first, self.longest = free, forgive, first, longest
        self.max_parked = max_parked
        #: Refusals beyond the free ones after which the delay is the longest; the count is capped there.
        self.ceiling = free + max(1, math.ceil(math.log2(longest / first)) + 1)
        self.state: dict = {}  # caller -> [count, when it was last counted]
        self.parked = 0

    def _level(self, ident, now: float) -> float:
        b = self.state.get(ident)
        if b is None:
            return 0.0
        return b[0] - (now - b[1]) * self.forgive

    def delay(self, ident, now: float) -> float:
        """Seconds the caller's next request waits (0 for a caller with no more than its free refusals)."""
        excess = math.ceil(self._level(ident, now) - self.free)
        if excess <= 0:
            return 0.0
        return min(self.longest, self.first * 2.0 ** (excess - 1))

    def refused(self, ident, now: float) -> None:
        """Count one refused answer to the caller."""
        b = self.state.get(ident)
        if b is None:
            if len(self.state) >= MAX_CALLERS:
                self._prune(now)
            self.state[ident] = [1.0, now]
            return
        b[0] = min(self.ceiling, max(0.0, b[0] - (now - b[1]) * self.forgive) + 1.0)
        b[1] = now

    def _prune(self, now: float) -> None:
        self.state = {k: b for k, b in self.state.items() if b[0] - (now - b[1]) * self.forgive > 0}
        if len(self.state) >= MAX_CALLERS:
            self.state.clear()

    async def park(self, seconds: float) -> bool:
        """Wait ``seconds``, or return False at once when ``max_parked`` requests are already waiting."""
        if self.parked >= self.max_parked:
            return False
        self.parked += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.parked -= 1
        return True
