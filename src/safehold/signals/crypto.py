"""Cryptographic hashes: MD5, SHA-1 and SHA-256 of the exact bytes.

These match only byte-identical files, but they are what most hash lists (NCMEC, IWF, …) still carry, so
every file gets all three. :class:`CryptoHasher` computes them in one pass; :func:`hash_file` does the same
for a file on disk in fixed-size chunks, so large files never have to be held in memory.
"""

from __future__ import annotations

import hashlib
import os
import string
from typing import BinaryIO, ClassVar

from safehold.errors import SafeholdError
from safehold.signals.base import ContentHasher, Signal, SignalType

_HEX = frozenset(string.hexdigits)

#: Chunk size used by the streaming helpers.
CHUNK_SIZE = 1 << 20


class _HexDigestSignal(SignalType):
    """A fixed-length hex digest compared by equality."""

    matching: ClassVar[str] = "exact"
    default_threshold: ClassVar[int] = 0
    max_threshold: ClassVar[int] = 0
    #: Number of hex characters of a valid value.
    hex_length: ClassVar[int]

    @classmethod
    def normalize(cls, value: str) -> str:
        if not isinstance(value, str):
            raise SafeholdError(
                "signal.invalid_value",
                f"{cls.name} value must be a string of {cls.hex_length} hex digits",
                detail={"type": cls.name},
            )
        v = value.strip().lower()
        if len(v) != cls.hex_length or not _HEX.issuperset(v):
            raise SafeholdError(
                "signal.invalid_value",
                f"{cls.name} value must be {cls.hex_length} hex digits, got {len(v)} characters",
                detail={"type": cls.name, "expected_length": cls.hex_length},
            )
        return v


class Md5Signal(_HexDigestSignal):
    name = "md5"
    description = "MD5 of the exact bytes (32 hex digits); matches byte-identical files only"
    hex_length = 32


class Sha1Signal(_HexDigestSignal):
    name = "sha1"
    description = "SHA-1 of the exact bytes (40 hex digits); matches byte-identical files only"
    hex_length = 40


class Sha256Signal(_HexDigestSignal):
    name = "sha256"
    description = "SHA-256 of the exact bytes (64 hex digits); matches byte-identical files only"
    hex_length = 64


def _new_hashers() -> dict[str, hashlib._Hash]:
    # usedforsecurity=False: these are identifiers, and FIPS builds refuse MD5 otherwise.
    return {
        "md5": hashlib.md5(usedforsecurity=False),
        "sha1": hashlib.sha1(usedforsecurity=False),
        "sha256": hashlib.sha256(),
    }


def _signals(hashers: dict) -> list[Signal]:
    return [Signal(type=name, value=h.hexdigest()) for name, h in hashers.items()]


def crypto_hashes(data: bytes) -> dict[str, str]:
    """``{"md5": …, "sha1": …, "sha256": …}`` of ``data``."""
    return {s.type: s.value for s in CryptoHasher().hash_bytes(data)}


def hash_stream(stream: BinaryIO, *, chunk_size: int = CHUNK_SIZE) -> list[Signal]:
    """All three digests of a binary stream, read in ``chunk_size`` pieces."""
    hashers = _new_hashers()
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        for h in hashers.values():
            h.update(chunk)
    return _signals(hashers)


def hash_file(path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE) -> list[Signal]:
    """All three digests of the file at ``path``, streamed (constant memory).

    A missing or unreadable file raises ``SafeholdError('media.unreadable')``.
    """
    try:
        with open(path, "rb") as f:
            return hash_stream(f, chunk_size=chunk_size)
    except OSError as e:
        raise SafeholdError(
            "media.unreadable",
            f"cannot read {os.fspath(path)!r}: {e.strerror or e}",
            detail={"path": os.fspath(path)},
        ) from e


class CryptoHasher(ContentHasher):
    """MD5, SHA-1 and SHA-256 of any content, computed together."""

    media: ClassVar[str] = "any"
    signal_types: ClassVar[tuple[str, ...]] = ("md5", "sha1", "sha256")

    def hash_bytes(self, data: bytes) -> list[Signal]:
        hashers = _new_hashers()
        view = memoryview(data)
        # Feeding chunks keeps the three digests cache-friendly on large inputs.
        for start in range(0, len(view), CHUNK_SIZE):
            chunk = view[start : start + CHUNK_SIZE]
            for h in hashers.values():
                h.update(chunk)
        return _signals(hashers)

    def hash_file(self, path: str | os.PathLike[str]) -> list[Signal]:
        return hash_file(path)
