"""Encryption at rest: AES-256-GCM under the instance's key-encryption key (KEK).

Everything sensitive that must be stored readable again later (media under review, webhook signing secrets,
later evidence) is sealed here. Each sealed blob gets its own random 256-bit data key, wrapped by the KEK
(envelope encryption), so rotating the KEK means re-wrapping keys, not re-encrypting media.

The KEK comes from ``SAFEHOLD_INSTANCE_KEY`` (base64 of 32 bytes) or, by default, from the file
``<home>/keys/instance.key``, created with mode 0600 on first start. It is never logged, never written to the
database and never part of an error message. :class:`KeyProvider` is the plug-in point for a KMS.

Blob layout, version 2: ``b"SH2" | len(wrapped, 2 bytes big-endian) | wrapped | nonce_d(12) | ciphertext+tag``,
where ``wrapped`` is whatever the key provider returns (a local key: ``nonce_k(12) | data key + tag(48)``; a KMS:
its own ciphertext, of its own length). Version 1 blobs (``b"SH1"``, a fixed 60-byte wrapped key) still open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safehold.errors import SafeholdError

MAGIC_V1, MAGIC = b"SH1", b"SH2"
KEY_BYTES = 32
NONCE_BYTES = 12
_WRAPPED_V1 = NONCE_BYTES + KEY_BYTES + 16  # nonce + data key + GCM tag
MAX_WRAPPED = 0xFFFF


class KeyProvider(Protocol):
    """Where the KEK comes from. A KMS plug-in implements ``wrap``/``unwrap`` of data keys itself."""

    def wrap(self, data_key: bytes, aad: bytes) -> bytes: ...  # noqa: E704

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes: ...  # noqa: E704

    def derive(self, label: bytes) -> bytes: ...  # noqa: E704  (a stable 32-byte secret for ``label``)


class LocalKey:
    """A KEK held in this process (read from a file or the environment)."""

    def __init__(self, kek: bytes):
        if len(kek) != KEY_BYTES:
            raise SafeholdError("keys.invalid", "The instance key must be 32 bytes (base64-encoded).")
        self._aead = AESGCM(kek)
        self._derive_key = hmac.new(kek, b"safehold.derive", hashlib.sha256).digest()

    def __repr__(self) -> str:  # never show the key
        return "LocalKey(<hidden>)"

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)

    def derive(self, label: bytes) -> bytes:
        return hmac.new(self._derive_key, label, hashlib.sha256).digest()

    @classmethod
    def load(cls, key_file: Path, env_value: str | None = None) -> LocalKey:
        """The KEK from ``env_value`` if given, else from ``key_file`` (created, 0600, if missing)."""
        if env_value:
            return cls(_decode(env_value, "SAFEHOLD_INSTANCE_KEY"))
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
        return cls(_decode(key_file.read_text().strip(), str(key_file)))


def _decode(value: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SafeholdError("keys.invalid", f"The instance key in {where} is not valid base64.") from None
    if len(raw) != KEY_BYTES:
        raise SafeholdError("keys.invalid", f"The instance key in {where} must decode to 32 bytes.")
    return raw


class Sealer:
    """Seal and open blobs. ``aad`` binds a blob to its purpose (e.g. ``b"media"``): a blob sealed for one
    purpose cannot be opened as another."""

    def __init__(self, keys: KeyProvider):
        self.keys = keys

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = self.keys.wrap(data_key, aad)
        if not 0 < len(wrapped) <= MAX_WRAPPED:
            raise SafeholdError("keys.provider", "The key provider returned an unusable wrapped key.", status=500)
        nonce = os.urandom(NONCE_BYTES)
        head = MAGIC + len(wrapped).to_bytes(2, "big") + wrapped
        return head + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        wrapped, body = _split(blob)
        try:
            data_key = self.keys.unwrap(wrapped, aad)
            return AESGCM(data_key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SafeholdError(
                "keys.wrong_key", "A sealed blob cannot be opened: wrong instance key or tampered data.", status=500
            ) from None

    def seal_text(self, value: str, aad: bytes = b"") -> str:
        return base64.b64encode(self.seal(value.encode(), aad)).decode()

    def open_text(self, value: str, aad: bytes = b"") -> str:
        return self.open(base64.b64decode(value), aad).decode()


def _split(blob: bytes) -> tuple[bytes, bytes]:
    """(wrapped key, nonce + ciphertext) of a version 1 or 2 blob."""
    if blob.startswith(MAGIC) and len(blob) >= 5:
        end = 5 + int.from_bytes(blob[3:5], "big")
        wrapped, body = blob[5:end], blob[end:]
    elif blob.startswith(MAGIC_V1):
        end = len(MAGIC_V1) + _WRAPPED_V1
        wrapped, body = blob[len(MAGIC_V1) : end], blob[end:]
    else:
        wrapped, body = b"", b""
    if not wrapped or len(body) < NONCE_BYTES + 16:
        raise SafeholdError("keys.corrupt", "A sealed blob is damaged or not a Safehold blob.", status=500)
    return wrapped, body
