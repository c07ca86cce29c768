"""Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 30-second steps, 6 digits.

What every authenticator app (Google Authenticator, Aegis, 1Password, FreeOTP, …) implements; a few lines of
``hmac``, so no dependency. The verifier accepts the current step and one either side (clock drift) and returns
the step that matched, so the caller can refuse the same code — or any older one — a second time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
#: Steps either side of now that still count: ±30 s of clock drift between the phone and the server.
DRIFT_STEPS = 1
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation for HMAC-SHA1
CODE_RE = re.compile(r"\d{6}")


def new_secret() -> str:
    """A random secret, base32 without padding (how authenticator apps take it typed in)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    cleaned = secret.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def step_at(when: float | None = None) -> int:
    return int((time.time() if when is None else when) // STEP_SECONDS)


def code_for_step(secret: str, step: int) -> str:
    """RFC 4226 HOTP of the counter ``step`` (dynamic truncation, 6 decimal digits)."""
    digest = hmac.new(_key(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def code_at(secret: str, when: float | None = None) -> str:
    return code_for_step(secret, step_at(when))


def matching_step(secret: str, code: str, *, when: float | None = None, after: int | None = None) -> int | None:
    """The step within ±``DRIFT_STEPS`` of now whose code is ``code`` and which is later than ``after`` (the
    last step accepted for this user), or ``None``. Every candidate is compared in constant time."""
    code = (code or "").replace(" ", "")
    if not CODE_RE.fullmatch(code):
        return None
    now = step_at(when)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if hmac.compare_digest(code_for_step(secret, step), code) and (after is None or step > after):
            found = step if found is None else found
    return found


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app takes (as a QR code or pasted)."""
    label = quote(f"{issuer}:{username}", safe=":")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS,
                       "period": STEP_SECONDS})  # fmt: skip
    return f"otpauth://totp/{label}?{query}"


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
