"""Encryption at rest: AES-256-GCM under the instance's key-encryption key (KEK).

Everything sensitive that must be stored readable again later (media under review, webhook signing secrets,
later evidence) is sealed here. Each sealed blob gets its own random 256-bit data key, wrapped by the KEK
(envelope encryption), so rotating the KEK means re-wrapping keys, not re-encrypting media.

The KEK comes from ``SAFEHOLD_INSTANCE_KEY`` (base64 of 32 bytes) or, by default, from the file
``<home>/keys/instance.key``, created with mode 0600 on first start. It is never logged, never written to the
database and never part of an error message. :class:`KeyProvider` is the plug-in point for a KMS.

Blob layout, version 3 (a key ring, see store/keyring.py): ``b"SH3" | key id(8) | len(wrapped, 2 bytes big-endian)
| wrapped | nonce_d(12) | ciphertext+tag``: the key id names the KEK that wrapped the data key, so a ring holding
the current and previous keys opens it with one try and a rotation knows what is left to re-wrap. Version 2
(``b"SH2" | len | wrapped | ...``, written with a plain provider such as a KMS plug-in) carries no key id, and
neither does version 1 (``b"SH1"``, a fixed 60-byte wrapped key); both still open: a ring tries each of its keys.
``wrapped`` is whatever the key provider returns (a local key: ``nonce_k(12) | data key + tag(48)``; a KMS: its
own ciphertext, of its own length).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safehold.errors import SafeholdError

MAGIC_V1, MAGIC, MAGIC_V3 = b"SH1", b"SH2", b"SH3"
KEY_BYTES = 32
KEY_ID_BYTES = 8
NONCE_BYTES = 12
_WRAPPED_V1 = NONCE_BYTES + KEY_BYTES + 16  # nonce + data key + GCM tag
MAX_WRAPPED = 0xFFFF


class KeyProvider(Protocol):
    """Where the KEK comes from. A KMS plug-in implements ``wrap``/``unwrap`` of data keys itself."""

    def wrap(self, data_key: bytes, aad: bytes) -> bytes: ...  # noqa: E704

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes: ...  # noqa: E704

    def derive(self, label: bytes) -> bytes: ...  # noqa: E704  (a stable 32-byte secret for ``label``)


def key_id(kek: bytes) -> bytes:
    """The short public name of a KEK: the first bytes of a domain-separated SHA-256 of it. It identifies the
    key in blobs, file names, status and the audit log without revealing anything usable about it."""
    return hashlib.sha256(b"safehold.key-id\0" + kek).digest()[:KEY_ID_BYTES]


def derive_root(kek: bytes) -> bytes:
    """The secret ``LocalKey.derive`` keys its HMAC with; a key ring keeps it stable across rotations."""
    return hmac.new(kek, b"safehold.derive", hashlib.sha256).digest()


class LocalKey:
    """A KEK held in this process (read from a file or the environment)."""

    def __init__(self, kek: bytes):
        if len(kek) != KEY_BYTES:
            raise SafeholdError("keys.invalid", "The instance key must be 32 bytes (base64-encoded).")
        self._aead = AESGCM(kek)
        self.derive_root = derive_root(kek)
        self.id = key_id(kek)

    def __repr__(self) -> str:  # never show the key
        return "LocalKey(<hidden>)"

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)

    def derive(self, label: bytes) -> bytes:
        return hmac.new(self.derive_root, label, hashlib.sha256).digest()

    @classmethod
    def load(cls, key_file: Path, env_value: str | None = None) -> LocalKey:
        """The KEK from ``env_value`` if given, else from ``key_file`` (created, 0600, if missing)."""
        if env_value:
            return cls(decode(env_value, "SAFEHOLD_INSTANCE_KEY"))
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                write_private(key_file, secrets.token_bytes(KEY_BYTES), exclusive=True)
            except FileExistsError:  # another process made it first: use theirs
                pass
        return cls(decode(key_file.read_text().strip(), str(key_file)))


def write_private(path: Path, secret: bytes, *, exclusive: bool = False) -> None:
    """Write ``secret`` (base64, one line) to ``path``, mode 0600. ``exclusive``: fail if it exists; otherwise
    replace it atomically (temporary file, fsync, rename), so a reader sees the old file or the new, never half."""
    target = path if exclusive else path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write((base64.b64encode(secret).decode() + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(target, path)
    except BaseException:
        if not exclusive:
            target.unlink(missing_ok=True)
        raise


def decode(value: str, where: str) -> bytes:
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
        nonce = os.urandom(NONCE_BYTES)
        return self._head(data_key, aad) + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)

    def _head(self, data_key: bytes, aad: bytes) -> bytes:
        """The blob header wrapping ``data_key``: version 3 (with the key id) under a key ring, else version 2."""
        wrap_with_id = getattr(self.keys, "wrap_with_id", None)
        kid, wrapped = wrap_with_id(data_key, aad) if wrap_with_id else (None, self.keys.wrap(data_key, aad))
        if not 0 < len(wrapped) <= MAX_WRAPPED:
            raise SafeholdError("keys.provider", "The key provider returned an unusable wrapped key.", status=500)
        size = len(wrapped).to_bytes(2, "big")
        return (MAGIC + size if kid is None else MAGIC_V3 + kid + size) + wrapped

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        kid, wrapped, end = parse_head(blob)
        body = blob[end:]
        if len(body) < NONCE_BYTES + 16:
            raise SafeholdError("keys.corrupt", "A sealed blob is damaged or not a Safehold blob.", status=500)
        data_key = self._unwrap(kid, wrapped, aad)
        try:
            return AESGCM(data_key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
        except InvalidTag:
            raise _wrong_key() from None

    def _unwrap(self, kid: bytes | None, wrapped: bytes, aad: bytes) -> bytes:
        try:
            if kid is None:
                return self.keys.unwrap(wrapped, aad)
            unwrap_id = getattr(self.keys, "unwrap_id", None)
            if unwrap_id is not None:
                return unwrap_id(kid, wrapped, aad)
            if getattr(self.keys, "id", None) == kid:  # a single LocalKey: the very key the blob names
                return self.keys.unwrap(wrapped, aad)
            raise SafeholdError(
                "keys.unknown_key", f"A sealed blob names key {kid.hex()}, which this key provider is not.", status=500
            )
        except InvalidTag:
            raise _wrong_key() from None

    def rewrap(self, head: bytes, aad: bytes = b"") -> tuple[bytes, int] | None:
        """A new header for a blob starting with ``head`` (at least its whole header), wrapping the same data key
        under the current key: ``(new header, length of the old one)``, or ``None`` when the current key already
        wrapped it. The ciphertext after the header is left as it is: rotating a KEK never re-encrypts content."""
        kid, wrapped, end = parse_head(head)
        if kid is not None and kid == getattr(self.keys, "current_id", None):
            return None
        return self._head(self._unwrap(kid, wrapped, aad), aad), end

    def seal_text(self, value: str, aad: bytes = b"") -> str:
        return base64.b64encode(self.seal(value.encode(), aad)).decode()

    def open_text(self, value: str, aad: bytes = b"") -> str:
        return self.open(base64.b64decode(value), aad).decode()


def _wrong_key() -> SafeholdError:
    return SafeholdError("keys.wrong_key", "A sealed blob cannot be opened: wrong key or tampered data.", status=500)


#: The most a blob header can take (version 3, the longest wrapped key): read this much to re-wrap a file.
MAX_HEAD = len(MAGIC_V3) + KEY_ID_BYTES + 2 + MAX_WRAPPED


def read_head(f: BinaryIO) -> bytes:
    """The header of the sealed file open as ``f`` (read from its start), and nothing after it: a few dozen bytes
    for a local key, so counting what each key seals never reads the content."""
    head = f.read(len(MAGIC_V3) + KEY_ID_BYTES + 2)
    if head.startswith(MAGIC_V3) and len(head) == 13:
        return head + f.read(int.from_bytes(head[11:13], "big"))
    if head.startswith(MAGIC) and len(head) >= 5:
        return head + f.read(max(0, 5 + int.from_bytes(head[3:5], "big") - len(head)))
    if head.startswith(MAGIC_V1):
        return head + f.read(max(0, len(MAGIC_V1) + _WRAPPED_V1 - len(head)))
    return head


def parse_head(blob: bytes) -> tuple[bytes | None, bytes, int]:
    """(key id or ``None`` for versions 1 and 2, wrapped data key, header length) of a sealed blob."""
    kid = None
    if blob.startswith(MAGIC_V3) and len(blob) >= 13:
        kid, start = blob[3:11], 13
        end = start + int.from_bytes(blob[11:13], "big")
    elif blob.startswith(MAGIC) and len(blob) >= 5:
        start, end = 5, 5 + int.from_bytes(blob[3:5], "big")
    elif blob.startswith(MAGIC_V1):
        start = len(MAGIC_V1)
        end = start + _WRAPPED_V1
    else:
        start = end = 0
    if end == start or len(blob) < end:
        raise SafeholdError("keys.corrupt", "A sealed blob is damaged or not a Safehold blob.", status=500)
    return kid, blob[start:end], end
