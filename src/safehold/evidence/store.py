"""The evidence store: a :class:`~safehold.store.vault.MediaVault` with its own directory, key and bindings.

It adds what the retention sweep needs: the on-disk name of a blob (an HMAC of its SHA-256, so it cannot be
derived from the file) and a listing of every file, to find blobs that no live record claims any more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from safehold.config import Settings
from safehold.evidence.keys import load_evidence_keys
from safehold.store.sealing import Sealer
from safehold.store.vault import MediaVault

AAD = b"safehold.evidence.v1"
NAMES = b"safehold.evidence.names"


class EvidenceStore(MediaVault):
    def blob_name(self, sha256: str) -> str:
        """The file name ``sha256``'s blob has (or would have) on disk."""
        return self._path(sha256).name

    def files(self) -> Iterator[Path]:
        """Every file in the store: sealed blobs and any temporary file a crashed write left behind."""
        if not self.root.is_dir():
            return
        for shard in self.root.iterdir():
            if shard.is_dir():
                yield from (p for p in shard.iterdir() if p.is_file())


def open_store(settings: Settings) -> EvidenceStore:
    return EvidenceStore(settings.evidence_dir, Sealer(load_evidence_keys(settings)), aad=AAD, names=NAMES)
