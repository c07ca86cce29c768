import hashlib

import pytest

from safehold.errors import SafeholdError
from safehold.signals.crypto import (
    CryptoHasher,
    Md5Signal,
    Sha1Signal,
    Sha256Signal,
    crypto_hashes,
    hash_file,
)

ABC = {
    "md5": "900150983cd24fb0d6963f7d28e17f72",
    "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
}


def test_known_vectors_in_one_pass():
    signals = CryptoHasher().hash_bytes(b"abc")
    assert [s.type for s in signals] == ["md5", "sha1", "sha256"]
    assert {s.type: s.value for s in signals} == ABC
    assert crypto_hashes(b"abc") == ABC


def test_hasher_declares_media_and_types():
    assert CryptoHasher.media == "any"
    assert CryptoHasher.signal_types == ("md5", "sha1", "sha256")


def test_large_input_crosses_chunks():
    data = bytes(range(256)) * 9000  # > 2 MiB, several chunks
    got = crypto_hashes(data)
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["md5"] == hashlib.md5(data).hexdigest()


def test_hash_file_streams_in_chunks(tmp_path):
    p = tmp_path / "blob.bin"
    data = b"safehold" * 1000 + b"tail"
    p.write_bytes(data)
    streamed = {s.type: s.value for s in hash_file(p, chunk_size=7)}
    assert streamed == crypto_hashes(data)
    assert {s.type: s.value for s in CryptoHasher().hash_file(p)} == streamed


def test_hash_file_missing_gives_stable_code(tmp_path):
    with pytest.raises(SafeholdError) as ei:
        hash_file(tmp_path / "nope.bin")
    assert ei.value.code == "media.unreadable"


@pytest.mark.parametrize(
    ("cls", "value"),
    [(Md5Signal, ABC["md5"]), (Sha1Signal, ABC["sha1"]), (Sha256Signal, ABC["sha256"])],
)
def test_normalize_lowercases_and_strips(cls, value):
    assert cls.normalize("  " + value.upper() + "\n") == value
    assert cls.matching == "exact"


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (Md5Signal, ABC["sha1"]),  # wrong length
        (Sha1Signal, ABC["md5"]),
        (Sha256Signal, ABC["sha256"][:-1]),
        (Sha256Signal, "g" * 64),  # not hex
        (Md5Signal, ""),
        (Md5Signal, None),
        (Sha1Signal, "0x" + "a" * 38),
    ],
)
def test_normalize_rejects_bad_values(cls, bad):
    with pytest.raises(SafeholdError) as ei:
        cls.normalize(bad)
    assert ei.value.code == "signal.invalid_value"
