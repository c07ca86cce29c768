"""The evidence key-encryption key: its own key, separate from the instance key, or a KMS plug-in.

Evidence is sealed under a different KEK from review media, so the people and machines that hold the instance key
(every reviewer-facing process) do not thereby hold the key to preserved evidence. ``SAFEHOLD_EVIDENCE_KMS`` names
a factory (``package.module:factory``) that returns a :class:`~safehold.store.sealing.KeyProvider` backed by a
KMS (which rotates its own keys); otherwise a key ring (store/keyring.py): the current key from
``SAFEHOLD_EVIDENCE_KEY`` or the file ``<home>/keys/evidence.key``, and the previous ones beside it.

A plug-in is checked once at start with a round trip (wrap, unwrap) of a throw-away data key: a provider that
cannot unwrap what it wrapped, or whose wrapped keys are empty or too long for the sealed-blob layout, fails here with
``evidence.kms`` instead of leaving unreadable evidence behind. Errors name the plug-in and the exception type,
never its message (a KMS client's message may carry credentials or key ids).
"""

from __future__ import annotations

import importlib
import os

from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.store.keyring import ring_for
from safehold.store.sealing import KEY_BYTES, MAX_WRAPPED, KeyProvider

_PROBE_AAD = b"safehold.evidence.kms-probe"


def load_evidence_keys(settings: Settings) -> KeyProvider:
    if settings.evidence_kms:
        return _plugin(settings.evidence_kms, settings)
    return ring_for(settings, "evidence")


def _plugin(spec: str, settings: Settings) -> KeyProvider:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SafeholdError("evidence.kms", "SAFEHOLD_EVIDENCE_KMS must look like 'package.module:factory'.")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SafeholdError("evidence.kms", f"Cannot load the KMS plug-in {spec!r}: {type(exc).__name__}.") from None
    try:
        provider = factory(settings)
    except Exception as exc:
        raise SafeholdError(
            "evidence.kms", f"The KMS plug-in {spec!r} failed to start: {type(exc).__name__}."
        ) from None
    if not all(callable(getattr(provider, name, None)) for name in ("wrap", "unwrap", "derive")):
        raise SafeholdError("evidence.kms", f"The KMS plug-in {spec!r} must return a KeyProvider.")
    _probe(provider, spec)
    return provider


def _probe(provider: KeyProvider, spec: str) -> None:
    data_key = os.urandom(KEY_BYTES)
    try:
        wrapped = provider.wrap(data_key, _PROBE_AAD)
        ok = 0 < len(wrapped) <= MAX_WRAPPED and provider.unwrap(wrapped, _PROBE_AAD) == data_key
        ok = ok and len(provider.derive(b"safehold.evidence.kms-probe")) == KEY_BYTES
    except Exception as exc:
        raise SafeholdError(
            "evidence.kms", f"The KMS plug-in {spec!r} failed a key round trip: {type(exc).__name__}."
        ) from None
    if not ok:
        raise SafeholdError(
            "evidence.kms",
            f"The KMS plug-in {spec!r} must unwrap what it wraps, wrap a data key into 1-{MAX_WRAPPED} bytes and "
            f"derive {KEY_BYTES}-byte secrets.",
        )
