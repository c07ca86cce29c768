"""The evidence key-encryption key: its own key, separate from the instance key, or a KMS plug-in.

Evidence is sealed under a different KEK from review media, so the people and machines that hold the instance key
(every reviewer-facing process) do not thereby hold the key to preserved evidence. ``SAFEHOLD_EVIDENCE_KMS`` names
a factory (``package.module:factory``) that returns a :class:`~safehold.store.sealing.KeyProvider` backed by a
KMS; otherwise the key comes from ``SAFEHOLD_EVIDENCE_KEY`` or the file ``<home>/keys/evidence.key``.
"""

from __future__ import annotations

import importlib

from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.store.sealing import KeyProvider, LocalKey


def load_evidence_keys(settings: Settings) -> KeyProvider:
    if settings.evidence_kms:
        return _plugin(settings.evidence_kms, settings)
    return LocalKey.load(settings.evidence_key_file, settings.evidence_key)


def _plugin(spec: str, settings: Settings) -> KeyProvider:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SafeholdError("evidence.kms", "SAFEHOLD_EVIDENCE_KMS must look like 'package.module:factory'.")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SafeholdError("evidence.kms", f"Cannot load the KMS plug-in {spec!r}: {type(exc).__name__}.") from None
    provider = factory(settings)
    if not all(callable(getattr(provider, name, None)) for name in ("wrap", "unwrap", "derive")):
        raise SafeholdError("evidence.kms", f"The KMS plug-in {spec!r} must return a KeyProvider.")
    return provider
