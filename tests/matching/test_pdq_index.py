"""PdqIndex: exactness against brute force, incremental updates, snapshots, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from safehold.errors import SafeholdError
from safehold.matching.pdq_index import PdqIndex, hash_to_hex, hashes_from_hex

POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def brute(db: np.ndarray, ids: np.ndarray, q: np.ndarray, r: int, alive=None) -> list[tuple[int, int]]:
    d = POP8[np.bitwise_xor(db, q[None, :])].sum(axis=1)
    sel = d <= r
    if alive is not None:
        sel &= alive
    best: dict[int, int] = {}
    for i, dd in zip(ids[sel].tolist(), d[sel].tolist(), strict=True):
        best[i] = min(dd, best.get(i, 1 << 30))
    return sorted(best.items(), key=lambda x: (x[1], x[0]))


def flip(rng, h: np.ndarray, d: int) -> np.ndarray:
    bits = np.unpackbits(h)
    bits[rng.choice(256, size=d, replace=False)] ^= 1
    return np.packbits(bits)


def planted_db(rng, n_random: int, queries: np.ndarray, dists=range(64)):
    rows = [rng.integers(0, 256, size=(n_random, 32), dtype=np.uint8)]
    for q in queries:
        rows.append(np.stack([flip(rng, q, d) for d in dists]))
    db = np.concatenate(rows)
    perm = rng.permutation(len(db))
    return np.ascontiguousarray(db[perm])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    queries = rng.integers(0, 256, size=(12, 32), dtype=np.uint8)
    db = planted_db(rng, 30000, queries)
    ids = np.arange(len(db), dtype=np.int64) * 3 + 7
    return db, ids, queries


@pytest.fixture(scope="module")
def index(data):
    db, ids, _ = data
    idx = PdqIndex()
    idx.add(ids, db)
    return idx


@pytest.mark.parametrize("r", [0, 10, 31, 47, 63])
@pytest.mark.parametrize("path", ["auto", "mih", "brute"])
def test_exact_vs_brute_force(data, index, r, path, monkeypatch):
    db, ids, queries = data
    if path != "auto":
        monkeypatch.setattr(PdqIndex, "_estimate_brute", staticmethod(lambda st, r: path == "brute"))
        index._plan_cache.clear()
    for q in queries:
        want = brute(db, ids, q, r)
        assert index.query(q, r) == want
        assert len(want) >= r + 1  # planted neighbours at every distance 0..r are all there
    want = [brute(db, ids, q, r) for q in queries]
    assert index.query_batch(queries, r) == want
    # the probe-major batch kernel (used for large indexes) gives the same answers
    saved = index.sorted_batch_min, index.sorted_batch_min_rows
    index.sorted_batch_min, index.sorted_batch_min_rows = 2, 0
    try:
        assert index.query_batch(queries, r) == want
    finally:
        index.sorted_batch_min, index.sorted_batch_min_rows = saved
    index._plan_cache.clear()


def test_batch_equals_single_and_inputs(index, data):
    _, _, queries = data
    batch = index.query_batch(queries, 31)
    assert batch == [index.query(q, 31) for q in queries]
    assert index.query(bytes(queries[0]), 31) == batch[0]
    assert index.query(queries[0]) == batch[0]  # default threshold 31
    assert index.query_batch(np.empty((0, 32), np.uint8), 31) == []
    ids, d, off = index.query_batch_arrays(queries, 31)
    assert off[-1] == len(ids) == len(d) == sum(map(len, batch))


def test_results_sorted_by_distance(index, data):
    _, _, queries = data
    res = index.query(queries[0], 63)
    assert [d for _, d in res] == sorted(d for _, d in res)
    assert [d for _, d in res[:64]] == list(range(64))


def test_empty_index():
    idx = PdqIndex()
    q = np.zeros(32, np.uint8)
    assert len(idx) == 0
    assert idx.query(q, 31) == []
    assert idx.query_batch(np.zeros((3, 32), np.uint8), 63) == [[], [], []]
    assert idx.remove([1, 2]) == 0
    idx.add(np.array([], dtype=np.int64), np.empty((0, 32), np.uint8))
    assert len(idx) == 0


def test_incremental_add_remove_interleaved():
    rng = np.random.default_rng(1)
    idx = PdqIndex(delta_cap=500, compact_ratio=0.3)
    idx.sorted_batch_min, idx.sorted_batch_min_rows = 4, 0  # batches below use the probe-major kernel
    all_h, all_id, alive = [], [], []
    next_id = 0
    for step in range(30):
        k = int(rng.integers(1, 400))
        h = rng.integers(0, 256, size=(k, 32), dtype=np.uint8)
        if all_h:  # some near-duplicates of existing rows
            base = np.concatenate(all_h)
            for j in range(min(k, 20)):
                h[j] = flip(rng, base[rng.integers(len(base))], int(rng.integers(0, 40)))
        ids = np.arange(next_id, next_id + k, dtype=np.int64)
        next_id += k
        idx.add(ids, h)
        all_h.append(h)
        all_id.append(ids)
        alive.append(np.ones(k, bool))
        # newly added hashes are immediately matchable
        assert (int(ids[-1]), 0) in idx.query(h[-1], 0)
        if step % 3 == 2:
            cat = np.concatenate(all_id)
            victims = rng.choice(cat, size=min(150, len(cat)), replace=False)
            idx.remove(victims)
            for a, i in zip(alive, all_id, strict=True):
                a[np.isin(i, victims)] = False
            assert idx.query(np.concatenate(all_h)[np.searchsorted(cat, victims[0])], 0) == []
        db, ids_all, live = np.concatenate(all_h), np.concatenate(all_id), np.concatenate(alive)
        assert len(idx) == int(live.sum())
        qs = db[rng.integers(0, len(db), 5)]
        for r in (0, 31, 63):
            want = [brute(db, ids_all, q, r, live) for q in qs]
            assert idx.query_batch(qs, r) == want
            assert [idx.query(q, r) for q in qs] == want
    assert idx.n_delta <= 500


def test_delta_merge_path():
    rng = np.random.default_rng(2)
    idx = PdqIndex(delta_cap=100)
    db = rng.integers(0, 256, size=(5000, 32), dtype=np.uint8)
    idx.add(np.arange(5000), db)  # built
    q = db[17]
    extra = np.stack([flip(rng, q, d) for d in range(40)])
    for i, h in enumerate(extra):  # one at a time: delta buffer, then merges
        idx.add(np.array([10000 + i]), h[None])
        assert (10000 + i, i) in idx.query(q, 63)
    assert idx.n_delta <= 100
    full = np.concatenate([db, extra])
    ids = np.concatenate([np.arange(5000), 10000 + np.arange(40)])
    for r in (0, 10, 31, 47, 63):
        assert idx.query(q, r) == brute(full, ids, q, r)
    idx.merge()
    assert idx.n_delta == 0
    assert idx.query(q, 31) == brute(full, ids, q, 31)


def test_tombstones_and_compaction():
    rng = np.random.default_rng(3)
    db = rng.integers(0, 256, size=(6000, 32), dtype=np.uint8)
    ids = np.arange(6000)
    idx = PdqIndex(compact_ratio=0.25, delta_cap=100)
    idx.add(ids, db)
    assert idx.remove(ids[:1000]) == 1000
    assert idx.n_tombstones == 1000
    assert idx.query(db[5], 0) == []
    assert idx.remove(ids[:1000]) == 0  # already gone
    assert len(idx) == 5000
    mem = idx.memory_bytes()
    idx.remove(ids[1000:2000])  # crosses the ratio → compacted
    assert idx.n_tombstones == 0 and len(idx) == 4000
    assert idx.memory_bytes() < mem
    live = np.arange(6000) >= 2000
    for q in db[[1, 2500, 5999]]:
        assert idx.query(q, 63) == brute(db, ids, q, 63, live)
    idx.compact()
    assert idx.query(db[2500], 0) == [(2500, 0)]


def test_duplicate_ids_and_hashes():
    rng = np.random.default_rng(4)
    h = rng.integers(0, 256, size=(3, 32), dtype=np.uint8)
    idx = PdqIndex()
    # same hash under two ids → both reported
    idx.add(np.array([1, 2]), np.stack([h[0], h[0]]))
    assert idx.query(h[0], 0) == [(1, 0), (2, 0)]
    # one id with several hashes → reported once, at its best distance
    near = flip(rng, h[1], 5)
    idx.add(np.array([3, 3]), np.stack([h[1], near]))
    assert idx.query(near, 31) == [(3, 0)]
    assert idx.query(h[1], 31) == [(3, 0)]
    assert len(idx) == 4
    assert idx.remove([3]) == 2  # removes every hash of the id
    assert idx.query(h[1], 63) == []
    # unsorted ids
    idx.add(np.array([100, 50, 75]), h)
    assert idx.remove([50]) == 1
    assert idx.query(h[1], 0) == []
    assert idx.query(h[2], 0) == [(75, 0)]


def test_bad_input():
    idx = PdqIndex()
    with pytest.raises(SafeholdError) as e:
        idx.add(np.array([1, 2]), np.zeros((1, 32), np.uint8))
    assert e.value.code == "index.bad_input"
    with pytest.raises(SafeholdError):
        idx.add(np.array([1]), np.zeros((1, 31), np.uint8))
    with pytest.raises(SafeholdError):
        idx.add(np.array([1]), np.zeros((1, 32), np.int32))
    with pytest.raises(SafeholdError) as e:
        idx.query(np.zeros(32, np.uint8), -1)
    assert e.value.code == "index.bad_threshold"


def test_hex_helpers():
    rng = np.random.default_rng(5)
    h = rng.integers(0, 256, size=(4, 32), dtype=np.uint8)
    hexes = [hash_to_hex(x) for x in h]
    assert all(len(x) == 64 for x in hexes)
    assert np.array_equal(hashes_from_hex(hexes), h)
    assert hash_to_hex(bytes(h[0])) == hexes[0]
    assert hashes_from_hex([]).shape == (0, 32)
    for bad in (["zz" * 32], ["ab"], [123]):
        with pytest.raises(SafeholdError) as e:
            hashes_from_hex(bad)
        assert e.value.code == "pdq.bad_hash"


def test_snapshot_roundtrip(tmp_path, data):
    db, ids, queries = data
    idx = PdqIndex(delta_cap=10_000_000)
    idx.add(ids[:20000], db[:20000])
    idx.merge()
    idx.add(ids[20000:], db[20000:])  # leaves a delta in the snapshot
    idx.remove(ids[:50])
    p = tmp_path / "pdq.idx"
    idx.save(p)
    assert not list(tmp_path.glob(".*tmp*"))
    for mmap in (True, False):
        back = PdqIndex.load(p, mmap=mmap)
        assert len(back) == len(idx) and back.n_tombstones == 50
        assert back.query_batch(queries, 47) == idx.query_batch(queries, 47)
        # a loaded (memory-mapped) index stays writable and does not touch the file
        back.add(np.array([10**9]), queries[:1])
        back.remove(ids[60:70])
        assert (10**9, 0) in back.query(queries[0], 0)
    again = PdqIndex.load(p)
    assert again.query_batch(queries, 47) == idx.query_batch(queries, 47)
    empty = tmp_path / "empty.idx"
    PdqIndex().save(empty)
    assert len(PdqIndex.load(empty)) == 0


def test_corrupt_snapshot(tmp_path):
    rng = np.random.default_rng(6)
    idx = PdqIndex()
    idx.add(np.arange(3000), rng.integers(0, 256, size=(3000, 32), dtype=np.uint8))
    p = tmp_path / "pdq.idx"
    idx.save(p)
    raw = p.read_bytes()
    cases = {
        "foreign": b"PK\x03\x04 not an index at all" * 10,
        "empty": b"",
        "truncated": raw[: len(raw) // 2],
        "flipped": raw[:-100] + bytes([raw[-100] ^ 0xFF]) + raw[-99:],
        "header": raw[:40] + bytes([raw[40] ^ 0x20]) + raw[41:],
        "version": raw[:16] + (99).to_bytes(4, "little") + raw[20:],
    }
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.idx"
        bad.write_bytes(blob)
        with pytest.raises(SafeholdError) as e:
            PdqIndex.load(bad)
        assert e.value.code == "index.snapshot_invalid", name
    with pytest.raises(SafeholdError) as e:
        PdqIndex.load(tmp_path / "missing.idx")
    assert e.value.code == "index.snapshot_invalid"


def test_thread_safety_smoke():
    rng = np.random.default_rng(7)
    db = rng.integers(0, 256, size=(20000, 32), dtype=np.uint8)
    idx = PdqIndex(delta_cap=300)
    idx.add(np.arange(20000), db)
    stable = db[:50]  # never removed: must always be found
    errors: list = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                res = idx.query_batch(stable, 10)
                for i, r in enumerate(res):
                    if (i, 0) not in r:
                        errors.append((i, r))
                idx.query(stable[3], 31)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    nid = 100000
    for step in range(60):
        h = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
        idx.add(np.arange(nid, nid + 50), h)
        assert idx.query(h[7], 0) == [(nid + 7, 0)]
        idx.remove(np.arange(nid, nid + 25))
        assert idx.query(h[3], 0) == []
        nid += 50
        if step == 30:
            idx.remove(np.arange(1000, 9000))  # triggers a compaction while readers run
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(idx) == 20000 - 8000 + 60 * 25


@pytest.mark.parametrize("r", [0, 10, 31])
def test_dense_buckets_exact(r, monkeypatch):
    """Buckets of every size 0..~60 (the word-wise scan handles <= 24 postings, larger ones the general scan),
    residuals near the query's, through the per-query and the probe-major kernels."""
    rng = np.random.default_rng(7)
    queries = rng.integers(0, 256, size=(6, 32), dtype=np.uint8)
    rows = [rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)]
    for q in queries:
        for size in range(0, 61, 3):
            blk = rng.integers(0, 256, size=(size, 32), dtype=np.uint8)
            # share the first two bytes (top 16 bits of substring 0) with the query, or with a 1-bit neighbour
            blk[:, 0] = q[0] ^ (1 << (size % 8) if size % 2 else 0)
            blk[:, 1] = q[1]
            blk[:, 2] = q[2] ^ (1 << rng.integers(0, 8, size=size)).astype(np.uint8) * (rng.random(size) < 0.5)
            for j in range(min(size, 4)):  # a few near neighbours in the dense bucket
                blk[j] = flip(rng, q, int(rng.integers(0, 40)))
            rows.append(blk)
    db = np.ascontiguousarray(np.concatenate(rows))
    ids = np.arange(len(db), dtype=np.int64)
    monkeypatch.setattr(PdqIndex, "_estimate_brute", staticmethod(lambda st, r: False))
    idx = PdqIndex()
    idx.add(ids, db)
    idx.merge()
    want = [brute(db, ids, q, r) for q in queries]
    assert [idx.query(q, r) for q in queries] == want
    idx.sorted_batch_min, idx.sorted_batch_min_rows = 2, 0
    assert idx.query_batch(queries, r) == want
