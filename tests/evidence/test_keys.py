"""The evidence key: its own key file or environment value, or a KMS plug-in checked with a round trip."""

from __future__ import annotations

import base64
import os

import pytest

from safehold.config import Settings
from safehold.errors import SafeholdError
from safehold.evidence.keys import load_evidence_keys
from safehold.evidence.store import open_store
from safehold.store.sealing import LocalKey, Sealer

KEY = os.urandom(32)
SECRET = "kms-secret-credential-123"


class FakeKms:
    """What a KMS plug-in returns: a provider whose key never leaves it (here: a LocalKey in disguise)."""

    def __init__(self, key: bytes = KEY):
        self._local = LocalKey(key)
        self.wrapped = 0

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        self.wrapped += 1
        return self._local.wrap(data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return self._local.unwrap(wrapped, aad)

    def derive(self, label: bytes) -> bytes:
        return self._local.derive(label)


def factory(settings):
    return FakeKms()


def failing_factory(settings):
    raise RuntimeError(f"could not authenticate with {SECRET}")


def not_a_provider(settings):
    return object()


class ForgetfulKms(FakeKms):
    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return os.urandom(32)


def forgetful(settings):
    return ForgetfulKms()


class LongCiphertextKms(FakeKms):
    """A real KMS returns its own, longer ciphertext (a key id and version in front): the blob layout takes it."""

    HEADER = b"arn:kms:example:key/1234:v7|"

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        return self.HEADER + super().wrap(data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        assert wrapped.startswith(self.HEADER)
        return super().unwrap(wrapped[len(self.HEADER) :], aad)


def long_ciphertext(settings):
    return LongCiphertextKms()


def _settings(tmp_path, **kw) -> Settings:
    return Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", **kw)


def test_key_file_is_created_private_and_reused(tmp_path):
    s = _settings(tmp_path)
    first = load_evidence_keys(s)
    assert s.evidence_key_file.exists() and s.evidence_key_file.stat().st_mode & 0o777 == 0o600
    assert s.evidence_key_file != s.key_file  # not the instance key
    blob = Sealer(first).seal(b"x", b"aad")
    assert Sealer(load_evidence_keys(s)).open(blob, b"aad") == b"x"
    assert "hidden" in repr(first) and s.evidence_key_file.read_text().strip() not in repr(first)


def test_key_from_the_environment(tmp_path):
    s = _settings(tmp_path, evidence_key=base64.b64encode(KEY).decode())
    blob = Sealer(load_evidence_keys(s)).seal(b"x")
    assert Sealer(LocalKey(KEY)).open(blob) == b"x"
    assert not s.evidence_key_file.exists()
    assert base64.b64encode(KEY).decode() not in repr(s)


def test_kms_plugin_is_loaded_and_used_by_the_store(tmp_path):
    s = _settings(tmp_path, evidence_kms="tests.evidence.test_keys:factory")
    store = open_store(s)
    assert isinstance(store.sealer.keys, FakeKms)
    info = store.put(b"benign bytes")
    assert store.sealer.keys.wrapped >= 2  # the start-up probe, then the blob
    assert store.get(info.sha256) == b"benign bytes"
    assert not s.evidence_key_file.exists()  # no local key when a KMS holds it


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no-colon", "must look like"),
        ("tests.evidence.no_such_module:factory", "ModuleNotFoundError"),
        ("tests.evidence.test_keys:missing", "AttributeError"),
        ("tests.evidence.test_keys:failing_factory", "failed to start: RuntimeError"),
        ("tests.evidence.test_keys:not_a_provider", "must return a KeyProvider"),
        ("tests.evidence.test_keys:forgetful", "must unwrap what it wraps"),
    ],
)
def test_kms_plugin_errors_are_clear_and_leak_nothing(tmp_path, spec, words):
    with pytest.raises(SafeholdError) as exc:
        load_evidence_keys(_settings(tmp_path, evidence_kms=spec))
    assert exc.value.code == "evidence.kms" and words in exc.value.message
    assert SECRET not in str(exc.value) and exc.value.__cause__ is None


def test_kms_plugin_with_variable_length_wrapped_keys(tmp_path):
    store = open_store(_settings(tmp_path, evidence_kms="tests.evidence.test_keys:long_ciphertext"))
    info = store.put(b"evidence bytes")
    assert store.get(info.sha256) == b"evidence bytes"
