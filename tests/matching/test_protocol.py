"""Every index implements the one protocol the bank index relies on: add, remove, query, query_batch, save, load,
len, memory — with the same meaning (absent ids ignored on removal, hits as (id, distance[, detail]))."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from safehold.errors import SafeholdError
from safehold.matching.exact_index import ExactIndex
from safehold.matching.pdq_index import PdqIndex
from safehold.matching.protocol import SignalIndex, missing_methods
from safehold.matching.vector_index import VectorIndex
from safehold.matching.vpdq_index import VpdqIndex


class L2Index(VectorIndex):
    dim = 8
    metric = "l2"


class BitsIndex(VectorIndex):
    dim = 8
    metric = "hamming"


rng = np.random.default_rng(5)


def _pdq() -> str:
    return rng.bytes(32).hex()


def _near_pdq(h: str, bits: int) -> str:
    b = bytearray(bytes.fromhex(h))
    for i in range(bits):
        b[i] ^= 1
    return b.hex()


def _vpdq(frames: list[str]) -> str:
    return json.dumps([f"{f},100,{i}.0" for i, f in enumerate(frames)])


PDQ_A, PDQ_B = _pdq(), _pdq()
VIDEO_A = [_pdq() for _ in range(5)]
CASES = {
    # index class, value of entry 1, value of entry 2, a query near entry 1, its distance, threshold
    "pdq": (PdqIndex, PDQ_A, PDQ_B, _near_pdq(PDQ_A, 3), 3, 31),
    "exact": (ExactIndex, hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest(), hashlib.md5(b"a").hexdigest(),
              0, 0),
    "vpdq": (VpdqIndex, _vpdq(VIDEO_A), _vpdq([_pdq() for _ in range(4)]), _vpdq(VIDEO_A[:4]), 0, 31),
    "l2": (L2Index, "0a" * 8, "f0" * 8, "0b" * 8, 3, 10),  # 8 bytes 1 apart: √8 ≈ 2.8 → 3
    "hamming": (BitsIndex, "00" * 8, "ff" * 8, "01" + "00" * 7, 1, 5),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_protocol(case, tmp_path):
    cls, v1, v2, near, distance, threshold = CASES[case]
    assert missing_methods(cls) == [] and isinstance(cls(), SignalIndex)
    idx = cls()
    idx.add(np.array([1, 2]), [v1, v2])
    assert len(idx) == 2 and idx.memory_bytes() > 0
    hits = idx.query(near, threshold)
    assert [h[:2] for h in hits] == [(1, distance)]
    assert [[h[0] for h in hs] for hs in idx.query_batch([near, v2], threshold)] == [[1], [2]]
    idx.save(tmp_path / "i.idx")
    back = cls.load(tmp_path / "i.idx")
    assert [h[:2] for h in back.query(near, threshold)] == [(1, distance)] and len(back) == 2
    assert idx.remove(np.array([1, 99])) >= 1
    assert idx.query(near, threshold) == [] and len(idx) == 1


def test_vpdq_hits_carry_metas_rule():
    idx = VpdqIndex()
    idx.add([7], [_vpdq(VIDEO_A)])
    (hit,) = idx.query(_vpdq(VIDEO_A[:4]), 31)
    assert hit[:2] == (7, 0)
    assert {k: hit[2][k] for k in ("query_match_percent", "target_match_percent", "is_match")} == {
        "query_match_percent": 100.0,
        "target_match_percent": 80.0,
        "is_match": True,
    }
    (hit,) = idx.query(_vpdq(VIDEO_A[:1] + [_pdq() for _ in range(4)]), 31)  # one frame in five: 20 %
    assert hit[2]["is_match"] is False and hit[2]["query_match_percent"] == 20.0


def test_vpdq_rule_applies_at_each_banks_own_frame_threshold():
    """The index compares at the widest threshold of all banks; a bank with a narrower one must not match frames
    only the wider one accepts."""
    from safehold.signals.vpdq import VpdqSignal

    idx = VpdqIndex()
    idx.add([7], [_vpdq(VIDEO_A)])
    (hit,) = idx.query(_vpdq([_near_pdq(f, 20) for f in VIDEO_A]), 31)  # every frame 20 bits away
    detail = hit[2]
    assert detail["is_match"] and len(detail["query_hits_by_distance"]) == 32
    assert VpdqSignal.is_match(0, 31, detail) and VpdqSignal.is_match(0, 20, detail)
    assert not VpdqSignal.is_match(0, 10, detail)
    assert VpdqSignal.bank_detail(10, detail) == {
        "query_match_percent": 0.0,
        "target_match_percent": 0.0,
        "is_match": False,
    }
    assert VpdqSignal.bank_detail(31, detail)["query_match_percent"] == 100.0
    # four frames identical, one 20 bits off: 100 % at 31 but 80 % (still a match, less sure) at 10
    mixed = _vpdq(VIDEO_A[:4] + [_near_pdq(VIDEO_A[4], 20)])
    (hit,) = idx.query(mixed, 31)
    assert VpdqSignal.bank_detail(10, hit[2])["query_match_percent"] == 80.0
    assert VpdqSignal.is_match(0, 10, hit[2]) and VpdqSignal.confidence(0, 10, hit[2]) == 0.8
    assert VpdqSignal.confidence(0, 31, hit[2]) == 1.0


def test_vector_index_orders_nearest_first_and_checks_input(tmp_path):
    idx = L2Index()
    idx.add([3, 1, 2], ["05" * 8, "02" * 8, "02" * 8])
    assert idx.query("00" * 8, 20) == [(1, 6), (2, 6), (3, 14)]
    with pytest.raises(SafeholdError) as e:
        idx.add([4], ["00" * 7])
    assert e.value.code == "index.bad_input"
    (tmp_path / "bad.idx").write_bytes(b"not a snapshot")
    with pytest.raises(SafeholdError) as e:
        L2Index.load(tmp_path / "bad.idx")
    assert e.value.code == "index.snapshot_invalid"
    idx.save(tmp_path / "l2.idx")
    with pytest.raises(SafeholdError) as e:
        BitsIndex.load(tmp_path / "l2.idx")  # same size, another metric: not its snapshot
    assert e.value.code == "index.snapshot_invalid"


def test_a_class_without_dim_is_refused():
    with pytest.raises(SafeholdError):
        VectorIndex()
    assert missing_methods(dict) != []


@pytest.mark.parametrize("metric,dim", [("l2", 144), ("l2", 300), ("hamming", 12), ("hamming", 16)])
def test_vector_index_scans_in_chunks_exactly(metric, dim, monkeypatch):
    """Chunked ‖a‖²+‖b‖²−2a·b (float32, float64 past 258 bytes) gives the brute-force distances, at the threshold
    too, across chunk boundaries and for removed rows."""
    import safehold.matching.vector_index as vi

    monkeypatch.setattr(vi, "_CHUNK_BYTES", 8 * (dim + 3) * 7)  # 7 rows per chunk for a batch of 3
    cls = type("Vec", (VectorIndex,), {"dim": dim, "metric": metric})
    vecs = rng.integers(0, 256, (50, dim), dtype=np.uint8)
    idx = cls()
    idx.add(np.arange(50), [v.tobytes().hex() for v in vecs])
    idx.remove([3])
    queries = vecs[[0, 10, 20]] ^ np.uint8(1)
    for q, hits in zip(queries, idx.query_batch([q.tobytes().hex() for q in queries], 10**6), strict=True):
        if metric == "l2":
            ref = np.rint(np.sqrt(((vecs.astype(np.int64) - q) ** 2).sum(axis=1))).astype(int)
        else:
            ref = np.unpackbits(vecs ^ q, axis=1).sum(axis=1)
        expected = sorted((int(d), i) for i, d in enumerate(ref) if i != 3)
        assert [(d, i) for i, d in hits] == expected
        at = expected[5][0]  # a threshold equal to a distance keeps that row and drops the next larger
        assert [(d, i) for i, d in idx.query(q.tobytes().hex(), at)] == [e for e in expected if e[0] <= at]
