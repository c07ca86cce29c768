"""ExactIndex: exact value → ids, removal, snapshots."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

from safehold.errors import SafeholdError
from safehold.matching.exact_index import ExactIndex


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def ids(hits):
    return [i for i, d in hits if d == 0]


def test_add_query_remove():
    idx = ExactIndex()
    vals = [md5(str(i)) for i in range(1000)]
    idx.add(np.arange(1000), vals)
    assert len(idx) == 1000
    assert ids(idx.query(vals[5])) == [5]
    assert ids(idx.query(vals[5].upper())) == [5]  # hex case-insensitive
    assert ids(idx.query(md5("nope"))) == []
    idx.add([2000], [vals[5]])  # same value, another id
    assert ids(idx.query(vals[5])) == [5, 2000]
    idx.add([2000], [vals[5]])  # idempotent
    assert len(idx) == 1001
    idx.add([7, 7], [md5("a"), md5("b")])  # one id, several values
    assert idx.remove([7]) == 3  # vals[7] + a + b
    assert ids(idx.query(md5("a"))) == [] and ids(idx.query(vals[7])) == []
    assert idx.remove([5]) == 1
    assert ids(idx.query(vals[5])) == [2000]
    assert idx.remove([123456]) == 0
    assert idx.query_batch([vals[1], "x"]) == [[(1, 0)], []]
    assert len(idx) == 999
    assert idx.memory_bytes() > 0


def test_verbatim_and_bad_input():
    idx = ExactIndex(normalize=None)
    idx.add([1], ["https://Example.com/A"])
    assert ids(idx.query("https://Example.com/A")) == [1]
    assert ids(idx.query("https://example.com/a")) == []
    with pytest.raises(SafeholdError) as e:
        idx.add([1, 2], ["x"])
    assert e.value.code == "index.bad_input"
    with pytest.raises(SafeholdError):
        idx.add([1], [""])
    with pytest.raises(SafeholdError):
        idx.query(123)


def test_empty():
    idx = ExactIndex()
    assert len(idx) == 0 and ids(idx.query("abc")) == [] and idx.remove([1]) == 0


def test_snapshot_roundtrip_and_corrupt(tmp_path):
    idx = ExactIndex()
    idx.add(np.arange(100), [md5(str(i)) for i in range(100)])
    idx.add([500], [md5("3")])
    p = tmp_path / "exact.idx"
    idx.save(p)
    back = ExactIndex.load(p)
    assert len(back) == 101 and ids(back.query(md5("3"))) == [3, 500]
    ExactIndex().save(tmp_path / "e.idx")
    assert len(ExactIndex.load(tmp_path / "e.idx")) == 0
    raw = p.read_bytes()
    for name, blob in {
        "foreign": b"{}",
        "truncated": raw[: len(raw) // 2],
        "flipped": raw[:-5] + bytes([raw[-5] ^ 1]) + raw[-4:],
    }.items():
        bad = tmp_path / name
        bad.write_bytes(blob)
        with pytest.raises(SafeholdError) as e:
            ExactIndex.load(bad)
        assert e.value.code == "index.snapshot_invalid"
    with pytest.raises(SafeholdError) as e:
        ExactIndex.load(tmp_path / "missing")
    assert e.value.code == "index.snapshot_invalid"


def test_threads():
    idx = ExactIndex()
    idx.add(np.arange(100), [md5(str(i)) for i in range(100)])
    errors = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            if ids(idx.query(md5("1"))) != [1]:
                errors.append("lost")

    ts = [threading.Thread(target=reader) for _ in range(2)]
    for t in ts:
        t.start()
    for i in range(1000, 3000):
        idx.add([i], [md5(str(i))])
        if i % 2:
            idx.remove([i])
    stop.set()
    for t in ts:
        t.join()
    assert not errors and len(idx) == 1100
