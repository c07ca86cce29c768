"""Log-in throttling without lock-outs, a cap on concurrent password checks, and bounded failure records.

Three counters of failed log-ins, kept in this process's memory (a failure costs no database write):

- per **client** (address): after ``login_free_failures`` failures, that address must wait
  ``login_backoff_seconds``, doubling with each further failure up to ``login_backoff_max_seconds``, before
  its next attempt is even looked at — it is answered 429 ``auth.throttled`` with ``Retry-After`` and no
  argon2 runs;
- per **(name, client)**: the same, so guesses at one account from one address slow down the same way;
- per **name** (all addresses together): after ``login_account_free_failures`` failures the name gets a short
  delay (capped at ``login_account_backoff_max_seconds``) — but only for addresses that have failed before.
  An address with a clean record (the real user at their desk) still gets in, so no stranger can lock anyone
  out; a botnet gets one guess per fresh address and is then slowed like everyone else.

Counters are keyed by what was *typed* (known and unknown names alike, so the answer and its timing never say
whether a name exists), hashed so that a password typed into the name field is not kept even in memory. A
counter is forgotten ``login_failure_window_minutes`` after its last failure, and each table holds at most
``MAX_ENTRIES`` (oldest dropped first), so a flood from many addresses cannot grow memory without bound.

The counters are per server process: behind several workers each has its own (the limits multiply by the
number of processes, still bounded). A reverse proxy may add its own per-address limit on ``/login``.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from safehold.config import Settings
from safehold.errors import SafeholdError

MAX_ENTRIES = 100_000


@dataclass
class _Count:
    failures: int
    last: float  # monotonic time of the last failure
    until: float  # no attempt is looked at before this


class _Table:
    """Failure counters with exponential back-off, bounded in size and forgotten after ``window``."""

    def __init__(self, free: int, base: float, cap: float, window: float):
        self.free, self.base, self.cap, self.window = free, base, cap, window
        self.items: OrderedDict[str, _Count] = OrderedDict()

    def get(self, key: str, now: float) -> _Count | None:
        c = self.items.get(key)
        if c is not None and now - c.last > self.window:
            del self.items[key]
            return None
        return c

    def wait(self, key: str, now: float) -> float:
        c = self.get(key, now)
        return max(0.0, c.until - now) if c else 0.0

    def fail(self, key: str, now: float) -> None:
        c = self.get(key, now) or _Count(0, now, now)
        c.failures += 1
        c.last = now
        over = c.failures - self.free
        if over >= 0:
            c.until = now + min(self.cap, self.base * 2 ** min(over, 40))
        self.items[key] = c
        self.items.move_to_end(key)
        while len(self.items) > MAX_ENTRIES:
            self.items.popitem(last=False)

    def undo(self, key: str, now: float) -> None:
        """Take back one failure counted up front for an attempt that turned out right."""
        c = self.get(key, now)
        if c is None:
            return
        c.failures -= 1
        if c.failures <= 0:
            del self.items[key]
        elif c.failures < self.free:
            c.until = now

    def clear(self, key: str) -> None:
        self.items.pop(key, None)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _keys(name: str, ip: str | None) -> tuple[str, str, str]:
    """(address, name and address, name) as table keys: hashed, so nothing typed is kept even in memory."""
    return _h(f"ip:{ip}"), _h(f"pair:{name}\0{ip}"), _h(f"name:{name}")


class LoginThrottle:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        window = settings.login_failure_window_minutes * 60
        free, base, cap = (
            settings.login_free_failures,
            settings.login_backoff_seconds,
            settings.login_backoff_max_seconds,
        )
        self.clients = _Table(free, base, cap, window)
        self.pairs = _Table(free, base, cap, window)
        acap = settings.login_account_backoff_max_seconds
        self.accounts = _Table(settings.login_account_free_failures, base, acap, window)
        self._lock = threading.Lock()

    def attempt(self, name: str, ip: str | None) -> None:
        """Let an attempt through, counting it as a failure up front (so a burst of parallel guesses cannot
        outrun the count; :meth:`succeeded` takes it back), or raise ``auth.throttled`` (429,
        ``detail.retry_after`` in whole seconds) without counting it."""
        now = self.clock()
        client, pair, account = _keys(name, ip)
        with self._lock:
            wait = max(self.clients.wait(client, now), self.pairs.wait(pair, now))
            if self.clients.get(client, now) is not None:  # an address with failures: the name's delay too
                wait = max(wait, self.accounts.wait(account, now))
            if wait > 0:
                raise throttled(wait)
            self.clients.fail(client, now)
            self.pairs.fail(pair, now)
            self.accounts.fail(account, now)

    def succeeded(self, name: str, ip: str | None) -> None:
        """A right answer: the attempt's up-front count is taken back and this address's count for this name
        is cleared (not the address's earlier failures, nor the name's from other addresses: one good log-in
        does not wipe a guesser's record)."""
        now = self.clock()
        client, pair, account = _keys(name, ip)
        with self._lock:
            self.clients.undo(client, now)
            self.accounts.undo(account, now)
            self.pairs.clear(pair)

    def forget_account(self, name: str) -> None:
        """An admin's unlock: the name's own delay and every address's delay for it go (this process)."""
        with self._lock:
            self.accounts.clear(_keys(name, None)[2])
            self.pairs.items.clear()  # pair keys are hashed: drop them all rather than keep a reverse index


def throttled(wait: float) -> SafeholdError:
    seconds = max(1, math.ceil(wait))
    return SafeholdError(
        "auth.throttled",
        f"Too many failed log-ins from here. Wait {seconds} s before trying again.",
        status=429,
        detail={"retry_after": seconds},
    )


class VerifyGate:
    """At most ``login_max_verifications`` password checks at once in this process (each argon2 verification
    takes 64 MiB and a few cores for ~50 ms); an attempt that cannot start within ``login_verify_wait_seconds``
    is answered 503 ``auth.busy`` with ``Retry-After``, before any hashing."""

    def __init__(self, settings: Settings):
        self.limit = settings.login_max_verifications
        self.wait = settings.login_verify_wait_seconds
        self._sem = threading.BoundedSemaphore(self.limit)

    def __enter__(self) -> VerifyGate:
        if not self._sem.acquire(timeout=self.wait):
            raise SafeholdError(
                "auth.busy", "The server is busy checking other log-ins; try again in a moment.", status=503,
                detail={"retry_after": 1},
            )  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        self._sem.release()


class FailureLog:
    """Which failed log-ins reach the append-only audit log: the first per (address, target) in each window of
    ``login_audit_window_seconds``, at most ``login_audit_max_records`` per window in all; the rest are counted,
    and the count is recorded (``auth.login_failures_suppressed``) with the first failure of a later window."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.window = settings.login_audit_window_seconds
        self.max_records = settings.login_audit_max_records
        self._lock = threading.Lock()
        self._start = None
        self._seen: set[tuple[str, str]] = set()
        self._written = 0
        self._suppressed = 0
        self._throttled = 0

    def admit(self, ip: str | None, target: str, *, throttled: bool = False) -> tuple[bool, dict | None]:
        """(write this failure?, the summary of the previous window to write first, if any)."""
        now = self.clock()
        with self._lock:
            summary = None
            if self._start is None or now - self._start >= self.window:
                if self._suppressed or self._throttled:
                    summary = {
                        "window_start": _iso(self._start),
                        "window_seconds": self.window,
                        "suppressed": self._suppressed,
                        "throttled": self._throttled,
                    }
                self._start = now - (now % self.window)
                self._seen.clear()
                self._written = self._suppressed = self._throttled = 0
            if throttled:
                self._throttled += 1
                return False, summary
            key = ((ip or "")[:64], target)
            if key in self._seen or self._written >= self.max_records:
                self._suppressed += 1
                return False, summary
            self._seen.add(key)
            self._written += 1
            return True, summary


def _iso(ts: float | None) -> str | None:
    import datetime as dt

    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
