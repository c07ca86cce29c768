"""The evidence store: a :class:`~safehold.store.vault.MediaVault` with its own directory, key and bindings."""

from __future__ import annotations

from safehold.config import Settings
from safehold.evidence.keys import load_evidence_keys
from safehold.store.sealing import Sealer
from safehold.store.vault import MediaVault

AAD = b"safehold.evidence.v1"
NAMES = b"safehold.evidence.names"


def open_store(settings: Settings) -> MediaVault:
    return MediaVault(settings.evidence_dir, Sealer(load_evidence_keys(settings)), aad=AAD, names=NAMES)
