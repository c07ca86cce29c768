"""The peer exchange's wire format, shared by both ends: canonical encoding, Ed25519 signatures, cursors.

A signed document is ``{"<part>": {...}, "signature": "<base64>"}``: the signature is over
``b"safehold-peer-v1 " + purpose + b"\\n" + canonical(part)``, where ``canonical`` is JSON with sorted keys, no
spaces and ASCII only (``\\u`` escapes), so both ends produce the same bytes from the same values. The values are
only strings, integers, booleans and null (never floats), so a parse and a re-encoding cannot change them. The
``purpose`` (``feed``, ``contribution``) keeps a signature made for one kind of document from passing as another.

Keys travel as base64 of the raw 32-byte Ed25519 public key, prefixed ``ed25519:`` so a pasted key says what it is.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from safehold.errors import SafeholdError

KEY_PREFIX = "ed25519:"
#: A public key as it is pasted between operators: ``ed25519:`` and 44 base64 characters.
PUBLIC_KEY_PATTERN = r"^ed25519:[A-Za-z0-9+/]{43}=$"
_DOMAIN = b"safehold-peer-v1 "
#: The most entries one feed page carries (the ``limit`` a peer may ask for).
MAX_PAGE = 1000
#: The most hashes one contribution carries.
MAX_CONTRIBUTION = 1000

#: Feed cursors. ``fill.<seq>.<after_id>``: copying the bank's entries in id order after ``after_id``, then the
#: change log after ``seq`` (its end when the copy began); ``log.<seq>``: reading the change log after ``seq``.
CURSOR_PATTERN = r"^(fill\.[0-9]{1,18}\.[0-9]{1,18}|log\.[0-9]{1,18})$"
_CURSOR = re.compile(CURSOR_PATTERN[:-1] + r"\Z")


def canonical(doc: dict) -> bytes:
    """The one byte encoding of ``doc`` both ends sign and verify."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _message(purpose: str, doc: dict) -> bytes:
    return _DOMAIN + purpose.encode() + b"\n" + canonical(doc)


def signing_key(seed: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key of a 32-byte seed (the instance derives its seed from its own key: stable across restarts)."""
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A pasted ``ed25519:…`` key, or ``peer.invalid_key``."""
    bad = SafeholdError("peer.invalid_key", "A peer key is `ed25519:` followed by 44 base64 characters.")
    if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
        raise bad
    try:
        raw = base64.b64decode(text[len(KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise bad from None
    if len(raw) != 32:
        raise bad
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(key: Ed25519PrivateKey, purpose: str, doc: dict) -> str:
    return base64.b64encode(key.sign(_message(purpose, doc))).decode()


def verify(key: Ed25519PublicKey, purpose: str, doc: dict, signature: object) -> bool:
    """Whether ``signature`` (base64) is ``key``'s over ``doc`` for ``purpose``; never raises on bad input."""
    if not isinstance(signature, str) or len(signature) > 128:
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), _message(purpose, doc))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True


def parse_cursor(cursor: str) -> tuple[str, int, int]:
    """``(phase, seq, after_id)`` of a cursor (``after_id`` 0 in the log phase), or ``peer.invalid_cursor``."""
    if not _CURSOR.match(cursor or ""):
        raise SafeholdError("peer.invalid_cursor", f"{cursor!r} is not a feed cursor: pass back a page's `next`.")
    phase, *numbers = cursor.split(".")
    return phase, int(numbers[0]), int(numbers[1]) if phase == "fill" else 0


def fill_cursor(seq: int, after_id: int) -> str:
    return f"fill.{seq}.{after_id}"


def log_cursor(seq: int) -> str:
    return f"log.{seq}"
