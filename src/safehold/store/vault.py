"""The media vault: content-addressed, encrypted files for media that matched or was escalated.

Media that did not match is never stored (DESIGN.md). What a case needs for review is written here once per
distinct content (keyed by SHA-256 of the plaintext) and sealed with :class:`~safehold.store.sealing.Sealer`.
On disk a file is named by an HMAC of its SHA-256, not the SHA-256 itself, so a directory listing does not
reveal which known images are held. Writes are atomic (temporary file, fsync, rename).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from safehold.errors import NotFound, SafeholdError
from safehold.store.sealing import Sealer

AAD = b"safehold.media.v1"
NAMES = b"safehold.vault.names"


@dataclass(frozen=True)
class StoredMedia:
    sha256: str
    md5: str
    size: int


class MediaVault:
    """``aad`` binds every blob to this store and ``names`` keys its file names, so the evidence store (the same
    class, its own directory, key, ``aad`` and ``names``) can never open or guess the vault's files."""

    def __init__(self, root: Path, sealer: Sealer, *, aad: bytes = AAD, names: bytes = NAMES):
        self.root = root
        self.sealer = sealer
        self.aad = aad
        self._name_key = sealer.keys.derive(names)  # secret, stable, never stored

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise SafeholdError("vault.invalid_key", "A media key is a lower-case SHA-256 hex digest.")
        name = hmac.new(self._name_key, sha256.encode(), hashlib.sha256).hexdigest()
        return self.root / name[:2] / name

    def put(self, data: bytes) -> StoredMedia:
        """Store ``data`` (idempotent: the same content is written once) and return its digests."""
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()  # recorded for reports, not for security
        info = StoredMedia(hashlib.sha256(data).hexdigest(), md5, len(data))
        path = self._path(info.sha256)
        if path.exists():
            return info
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # each level owner-only, not just the last
        path.parent.mkdir(exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.sealer.seal(data, self.aad))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return info

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise NotFound("vault.not_found", "This media is no longer held.") from None
        data = self.sealer.open(blob, self.aad)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SafeholdError("vault.corrupt", "Stored media does not match its digest.", status=500)
        return data

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def delete(self, sha256: str) -> bool:
        path = self._path(sha256)
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False
