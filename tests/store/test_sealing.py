"""Encryption at rest: sealed blobs round-trip, are bound to their purpose and key, and never show the key."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from safehold.errors import SafeholdError
from safehold.store.sealing import LocalKey, Sealer
from safehold.store.vault import MediaVault


def test_key_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "keys" / "instance.key"
    first = Sealer(LocalKey.load(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    blob = first.seal(b"hello", b"media")
    assert Sealer(LocalKey.load(path)).open(blob, b"media") == b"hello"


def test_environment_key_wins_and_is_validated(tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    sealer = Sealer(LocalKey.load(tmp_path / "unused.key", key))
    assert not (tmp_path / "unused.key").exists()
    assert sealer.open(sealer.seal(b"x")) == b"x"
    with pytest.raises(SafeholdError) as err:
        LocalKey.load(tmp_path / "unused.key", "not base64!")
    assert err.value.code == "keys.invalid" and key not in err.value.message
    with pytest.raises(SafeholdError):
        LocalKey.load(tmp_path / "unused.key", base64.b64encode(b"short").decode())


def test_wrong_purpose_wrong_key_or_tampering_is_refused(tmp_path):
    sealer = Sealer(LocalKey(os.urandom(32)))
    blob = sealer.seal(b"secret bytes", b"media")
    assert b"secret bytes" not in blob
    for bad in (
        lambda: sealer.open(blob, b"webhook"),
        lambda: Sealer(LocalKey(os.urandom(32))).open(blob, b"media"),
        lambda: sealer.open(blob[:-1] + bytes([blob[-1] ^ 1]), b"media"),
        lambda: sealer.open(b"garbage", b"media"),
    ):
        with pytest.raises(SafeholdError) as err:
            bad()
        assert err.value.code in ("keys.wrong_key", "keys.corrupt")


def test_key_is_never_in_repr():
    raw = os.urandom(32)
    assert base64.b64encode(raw).decode() not in repr(LocalKey(raw))
    assert raw.hex() not in repr(LocalKey(raw))


def test_vault_stores_once_encrypted_and_named_without_the_hash(tmp_path):
    vault = MediaVault(tmp_path / "vault", Sealer(LocalKey(os.urandom(32))))
    info = vault.put(b"picture bytes")
    assert vault.put(b"picture bytes") == info
    files = [p for p in (tmp_path / "vault").rglob("*") if p.is_file()]
    assert len(files) == 1 and info.sha256 not in str(files[0])
    assert b"picture bytes" not in files[0].read_bytes()
    assert vault.get(info.sha256) == b"picture bytes" and vault.exists(info.sha256)
    assert vault.delete(info.sha256) and not vault.exists(info.sha256)
    with pytest.raises(SafeholdError) as err:
        vault.get(info.sha256)
    assert err.value.code == "vault.not_found"
    with pytest.raises(SafeholdError):
        vault.get("../../etc/passwd")


def test_version_1_blobs_still_open(tmp_path):
    """Blobs sealed before the wrapped key got a length prefix (``SH1``, a fixed 60-byte wrapped key) still open."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = LocalKey(os.urandom(32))
    data_key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    blob = b"SH1" + key.wrap(data_key, b"media") + nonce + AESGCM(data_key).encrypt(nonce, b"old media", b"media")
    assert Sealer(key).open(blob, b"media") == b"old media"
    assert Sealer(key).seal(b"x", b"media").startswith(b"SH2")
