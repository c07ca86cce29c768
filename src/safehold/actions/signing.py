"""Webhook signatures: HMAC-SHA256 over the timestamp and the exact body bytes.

Header ``Safehold-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``. Signing the
timestamp with the body lets a receiver refuse replays of an old request (``tolerance``); signing the raw bytes
(not a re-serialised JSON) means the receiver verifies exactly what it read off the wire. A header may carry
several ``v1`` values (a receiver accepting any of them can roll secrets without downtime).

This module has no dependency on the rest of Safehold, so a receiver written in Python can copy it whole.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "v1"


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Safehold-Signature`` header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},{SCHEME}={_digest(secret, body, timestamp)}"


def verify(secret: str, header: str, body: bytes | str, *, tolerance: float = 300, now: float | None = None) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance`` seconds of
    ``now``. Never raises on a malformed header: it is simply not valid."""
    if isinstance(body, str):
        body = body.encode()
    timestamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _digest(secret, body, timestamp)
    # Compare against every candidate (no early exit), each in constant time.
    return sum(hmac.compare_digest(expected, c) for c in candidates) > 0
