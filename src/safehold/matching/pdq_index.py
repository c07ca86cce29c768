"""Exact PDQ (256-bit) Hamming-range index: multi-index hashing with incremental updates.

Design (details and measured figures in ``docs/matching.md``):

* Hashes are stored once, row = internal id, as ``(n, 32) uint8`` (viewed as ``(n, 4) uint64`` for popcount),
  with the external entry id per row (``int64``) and a tombstone bitmap.
* The 256 bits are split into ``m = 11`` substrings (3 × 24 + 8 × 23 bits). By the pigeonhole principle a hash
  within distance ``r`` of the query has, for ``r = m·k + a``, one of the first ``a + 1`` substrings within ``k`` or
  one of the others within ``k − 1`` — so probing every substring at that radius is **exact** (never approximate).
* Per substring the rows are kept in CSR form: a coarse offset table on the top 16 bits of the substring
  (65 537 × uint32) and, per posting, a uint32 row id and a 1-byte residual (the low 7–8 bits). A query enumerates
  flips of the top 16 bits (at most ``k``), scans those buckets comparing the residual popcount against the remaining
  budget and verifies survivors' full 256-bit distance.
* New rows go to the tail of the hash table (the *delta*), searched by brute force until it exceeds ``delta_cap``
  rows, then merged into the postings by a linear merge (no re-sort). Deletes set a tombstone bit, effective
  immediately; ``compact()`` (automatic when tombstones exceed ``compact_ratio``) rewrites without them.
* When probing would cost more than a scan (large thresholds on small indexes), an exact blocked brute-force
  popcount scan is used instead.
* Queries read an immutable state reference without a lock and run in ``nogil`` numba kernels, so several threads
  can query in parallel while one writer (serialised by a lock) adds or removes.

Memory: 32 (hash) + 8 (id) + 11 × 5 (postings) + 1/8 (tombstone) ≈ 95.1 bytes/hash, plus 2.9 MB of offset tables.
"""

from __future__ import annotations

import json
import math
import os
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from safehold.errors import SafeholdError
from safehold.matching import _mih_kernels as K
from safehold.matching.protocol import write_atomically

__all__ = ["PdqIndex", "hashes_from_hex", "hash_to_hex", "PDQ_DEFAULT_THRESHOLD"]

PDQ_DEFAULT_THRESHOLD = 31
HASH_BYTES = 32
N_SUBSTRINGS = 11
_SNAPSHOT_MAGIC = b"SAFEHOLD-PDQIDX\n"
_SNAPSHOT_VERSION = 1
_ALIGN = 64

# substring layout: 3 × 24 bits then 8 × 23 bits
_SUB_LEN = np.array([24, 24, 24] + [23] * 8, dtype=np.int64)
_SUB_START = np.concatenate([[0], np.cumsum(_SUB_LEN)[:-1]]).astype(np.int64)
_SUB_RBITS = (_SUB_LEN - K.NBUCKET_BITS).astype(np.int64)
assert int(_SUB_LEN.sum()) == 256

_SORTED_BLOCK = 2048  # queries per probe-major block (bounds the probe arrays to ~50 MB)
# rough per-operation costs (ns) for choosing between probing and a brute-force scan
_C_PROBE, _C_SCAN, _C_VERIFY, _C_BRUTE = 70.0, 2.0, 30.0, 1.5


# --------------------------------------------------------------------------------------------- hex helpers
def hashes_from_hex(hexes: Sequence[str]) -> np.ndarray:
    """Decode 64-character hex PDQ strings into an ``(n, 32) uint8`` array."""
    hexes = list(hexes)
    if not hexes:
        return np.empty((0, HASH_BYTES), dtype=np.uint8)
    for i, h in enumerate(hexes):
        if not isinstance(h, str) or len(h) != 2 * HASH_BYTES:
            raise SafeholdError("pdq.bad_hash", f"PDQ hash #{i} is not a 64-character hex string", detail={"index": i})
    try:
        raw = bytes.fromhex("".join(hexes))
    except ValueError:
        for i, h in enumerate(hexes):
            try:
                bytes.fromhex(h)
            except ValueError:
                raise SafeholdError("pdq.bad_hash", f"PDQ hash #{i} is not valid hex", detail={"index": i}) from None
        raise
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, HASH_BYTES).copy()


def hash_to_hex(h: np.ndarray | bytes) -> str:
    """Encode one PDQ hash (32 bytes) as 64 lower-case hex characters."""
    b = bytes(h) if not isinstance(h, np.ndarray) else np.ascontiguousarray(h, dtype=np.uint8).tobytes()
    if len(b) != HASH_BYTES:
        raise SafeholdError("pdq.bad_hash", f"a PDQ hash has 32 bytes, got {len(b)}")
    return b.hex()


def _as_hash_matrix(hashes, what: str = "hashes") -> np.ndarray:
    # Hex text too, so PdqIndex takes canonical values like every index (safehold.matching.protocol).
    if isinstance(hashes, str):
        return hashes_from_hex([hashes])
    if isinstance(hashes, (list, tuple)) and hashes and isinstance(hashes[0], str):
        return hashes_from_hex(hashes)
    if isinstance(hashes, (bytes, bytearray, memoryview)):
        hashes = np.frombuffer(bytes(hashes), dtype=np.uint8).copy()
    arr = np.asarray(hashes)
    if arr.dtype != np.uint8:
        raise SafeholdError("index.bad_input", f"{what} must be uint8, got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != HASH_BYTES:
        raise SafeholdError("index.bad_input", f"{what} must have shape (n, 32), got {arr.shape}")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        arr = arr.copy()  # one kernel specialisation (C-contiguous, writeable)
    return arr


def _as_ids(ids) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise SafeholdError("index.bad_input", "ids must be a 1-D array of integers")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise SafeholdError("index.bad_input", "ids must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _raw(a: np.ndarray) -> np.ndarray:
    """A contiguous array's bytes as a 1-D uint8 view (also for empty arrays)."""
    return a.reshape(-1).view(np.uint8)


def _sub_radius(r: int) -> np.ndarray:
    """Per-substring probe radius: r = m·k + a → the first a+1 substrings at k, the rest at k-1 (-1 = skip)."""
    k, a = divmod(r, N_SUBSTRINGS)
    rad = np.full(N_SUBSTRINGS, k - 1, dtype=np.int64)
    rad[: a + 1] = k
    return rad


# --------------------------------------------------------------------------------------------- state
class _State:
    """An immutable view published to readers; arrays may grow in place only beyond ``n_total``."""

    __slots__ = ("h8", "h64", "ext", "dead", "offs", "pids", "pres", "n_main", "n_total", "ob", "od", "oshift")

    def __init__(self, h8, ext, dead, offs, pids, pres, n_main, n_total, compact=None):
        self.h8 = h8
        self.h64 = h8.view(np.uint64)
        self.ext = ext
        self.dead = dead
        self.offs = offs
        # query-side copy of the offsets: uint32 base per block of 2**oshift buckets + uint16 delta per bucket
        # (1.4 MB for all substrings instead of 2.9 MB, so it stays in L2 cache)
        self.ob, self.od, self.oshift = compact if compact is not None else _compact_offsets(offs)
        self.pids = pids
        self.pres = pres
        self.n_main = n_main
        self.n_total = n_total


def _compact_offsets(offs: np.ndarray):
    for shift in (6, 5, 4, 3, 2, 1, 0):
        base = np.ascontiguousarray(offs[:, :: 1 << shift])  # (m, 65536 >> shift + 1): bucket 65536 included
        delta = offs - np.repeat(base, 1 << shift, axis=1)[:, : K.NBUCKETS + 1]
        if shift == 0 or int(delta.max(initial=0)) <= 0xFFFF:
            return base.reshape(-1), delta.astype(np.uint16).reshape(-1), shift
    raise AssertionError("unreachable")


def _empty_postings(n: int = 0):
    return (
        np.zeros((N_SUBSTRINGS, K.NBUCKETS + 1), dtype=np.uint32),
        np.empty((N_SUBSTRINGS, n), dtype=np.uint32),
        np.empty((N_SUBSTRINGS, n), dtype=np.uint8),
    )


class PdqIndex:
    """Exact PDQ Hamming-range index (a :class:`~safehold.matching.protocol.SignalIndex`): hashes are given as
    64-character hex values or as ``(n, 32) uint8`` arrays. See the module docstring."""

    def __init__(self, *, delta_cap: int = 8192, compact_ratio: float = 0.2):
        if delta_cap < 1:
            raise SafeholdError("index.bad_input", "delta_cap must be >= 1")
        self.delta_cap = int(delta_cap)
        self.compact_ratio = float(compact_ratio)
        self._wlock = threading.Lock()
        offs, pids, pres = _empty_postings()
        self._state = _State(
            np.empty((0, HASH_BYTES), np.uint8),
            np.empty(0, np.int64),
            np.zeros(1, np.uint8),
            offs,
            pids,
            pres,
            0,
            0,
        )
        self._n_dead = 0
        self._ext_sorted = True  # ext[:n_total] non-decreasing → removals by binary search
        self._plan_cache: dict = {}
        # batches of at least this many queries, on at least this many indexed rows, use the probe-major kernel
        # (measured after the word-wise bucket scan: ~1.2-1.4x the per-query kernel at 1M rows, ahead at 10M)
        self.sorted_batch_min = 32
        self.sorted_batch_min_rows = 262_144

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        return self._state.n_total - self._n_dead

    @property
    def n_tombstones(self) -> int:
        return self._n_dead

    @property
    def n_delta(self) -> int:
        st = self._state
        return st.n_total - st.n_main

    def memory_bytes(self) -> int:
        """Bytes held by the index arrays (allocated capacity included)."""
        st = self._state
        return int(
            st.h8.nbytes
            + st.ext.nbytes
            + st.dead.nbytes
            + st.offs.nbytes
            + st.pids.nbytes
            + st.pres.nbytes
            + st.ob.nbytes
            + st.od.nbytes
        )

    # ------------------------------------------------------------------ writes
    def add(self, ids, hashes) -> None:
        """Add hashes with their entry ids; matchable as soon as this returns.

        An id may be added more than once (several hashes per entry); identical hashes under different ids are
        kept separately and all reported.
        """
        ids = _as_ids(ids)
        h = _as_hash_matrix(hashes)
        if len(ids) != len(h):
            raise SafeholdError("index.bad_input", f"{len(ids)} ids for {len(h)} hashes")
        if len(ids) == 0:
            return
        with self._wlock:
            st = self._state
            n0, k = st.n_total, len(ids)
            need = n0 + k
            h8, ext, dead = st.h8, st.ext, st.dead
            if need > h8.shape[0]:
                cap = need if n0 == 0 else max(need, h8.shape[0] + h8.shape[0] // 16 + 4096)
                nh = np.empty((cap, HASH_BYTES), dtype=np.uint8)
                nh[:n0] = h8[:n0]
                ne = np.empty(cap, dtype=np.int64)
                ne[:n0] = ext[:n0]
                nd = np.zeros(cap // 8 + 1, dtype=np.uint8)
                nd[: dead.shape[0]] = dead[: min(dead.shape[0], nd.shape[0])]
                h8, ext, dead = nh, ne, nd
            h8[n0:need] = h
            ext[n0:need] = ids
            if self._ext_sorted:
                self._ext_sorted = bool(np.all(ids[1:] >= ids[:-1]) and (n0 == 0 or ids[0] >= ext[n0 - 1]))
            st = _State(h8, ext, dead, st.offs, st.pids, st.pres, st.n_main, need, (st.ob, st.od, st.oshift))
            self._state = st  # published: the new rows are matchable (delta brute force) from here on
            if st.n_total - st.n_main > self.delta_cap:
                self._merge_locked()

    def remove(self, ids) -> int:
        """Tombstone every hash stored under these ids; effective immediately. Returns the number removed."""
        ids = _as_ids(ids)
        if len(ids) == 0:
            return 0
        with self._wlock:
            st = self._state
            n = st.n_total
            ext = st.ext[:n]
            if self._ext_sorted:
                u = np.unique(ids)
                lo = np.searchsorted(ext, u, "left")
                hi = np.searchsorted(ext, u, "right")
                sel = hi > lo
                if not sel.any():
                    return 0
                rows = np.concatenate([np.arange(a, b) for a, b in zip(lo[sel], hi[sel], strict=True)])
            else:
                rows = np.flatnonzero(np.isin(ext, ids))
            if len(rows) == 0:
                return 0
            rows = rows.astype(np.int64)
            bits = (st.dead[rows >> 3] >> (rows & 7)) & 1
            rows = rows[bits == 0]
            if len(rows) == 0:
                return 0
            np.bitwise_or.at(st.dead, rows >> 3, (1 << (rows & 7)).astype(np.uint8))
            self._n_dead += len(rows)
            if self._n_dead >= 1024 and self._n_dead > self.compact_ratio * n:
                self._compact_locked()
            return int(len(rows))

    def merge(self) -> None:
        """Merge the delta buffer into the postings now (normally automatic)."""
        with self._wlock:
            self._merge_locked()

    def compact(self) -> None:
        """Drop tombstoned rows and rebuild the postings (normally automatic)."""
        with self._wlock:
            self._compact_locked()

    def _merge_locked(self) -> None:
        st = self._state
        if st.n_total == st.n_main:
            return
        offs, pids, pres = _empty_postings(st.n_total)
        if st.n_main == 0:
            K.build_postings(st.h8, st.n_total, _SUB_START, _SUB_LEN, _SUB_RBITS, offs, pids, pres)
        else:
            K.merge_postings(
                st.h8,
                st.offs,
                st.pids,
                st.pres,
                st.n_main,
                st.n_total,
                _SUB_START,
                _SUB_LEN,
                _SUB_RBITS,
                offs,
                pids,
                pres,
            )
        self._state = _State(st.h8, st.ext, st.dead, offs, pids, pres, st.n_total, st.n_total)

    def _compact_locked(self) -> None:
        st = self._state
        n = st.n_total
        if self._n_dead == 0:
            self._merge_locked()
            return
        rows = np.arange(n, dtype=np.int64)
        alive = ((st.dead[rows >> 3] >> (rows & 7)) & 1) == 0
        h8 = np.ascontiguousarray(st.h8[:n][alive])
        ext = np.ascontiguousarray(st.ext[:n][alive])
        nn = len(ext)
        dead = np.zeros(nn // 8 + 1, dtype=np.uint8)
        offs, pids, pres = _empty_postings(nn)
        if nn:
            K.build_postings(h8, nn, _SUB_START, _SUB_LEN, _SUB_RBITS, offs, pids, pres)
        self._n_dead = 0
        self._ext_sorted = bool(nn < 2 or np.all(ext[1:] >= ext[:-1]))
        self._state = _State(h8, ext, dead, offs, pids, pres, nn, nn)

    # ------------------------------------------------------------------ queries
    def _use_brute(self, st: _State, r: int) -> bool:
        if st.n_main == 0:
            return False  # delta-only: the MIH kernel brute-forces it anyway
        key = (r, st.n_main, st.n_total)
        hit = self._plan_cache.get(key)
        if hit is None:
            if len(self._plan_cache) > 256:
                self._plan_cache.clear()
            hit = self._plan_cache[key] = self._estimate_brute(st, r)
        return hit

    @staticmethod
    def _estimate_brute(st: _State, r: int) -> bool:
        rad = _sub_radius(r)
        n = st.n_main
        cost = 0.0
        for s in range(N_SUBSTRINGS):
            k = int(rad[s])
            if k < 0:
                continue
            if k >= 16:
                return True
            probes = float(K.MASK_START[k + 1])
            L = int(_SUB_LEN[s])
            frac = sum(math.comb(L, i) for i in range(k + 1)) / float(1 << L)
            cost += probes * _C_PROBE + probes * n / K.NBUCKETS * _C_SCAN + n * frac * _C_VERIFY
        brute = st.n_total * _C_BRUTE
        return cost > brute

    def _run(self, q8: np.ndarray, threshold: int):
        if not isinstance(threshold, (int, np.integer)) or isinstance(threshold, bool) or threshold < 0:
            raise SafeholdError("index.bad_threshold", f"threshold must be a non-negative integer, got {threshold!r}")
        r = int(min(threshold, 256))
        st = self._state
        q64 = q8.view(np.uint64)
        if self._use_brute(st, r):
            return K.brute_query_batch(q64, st.h64, st.dead, st.ext, st.n_total, r)
        args = (
            q8,
            q64,
            st.h8,
            st.h64,
            st.dead,
            st.ext,
            st.ob,
            st.od,
            st.oshift,
            st.pids.reshape(-1),
            st.pres.reshape(-1),
            st.n_main,
            st.n_total,
            _SUB_START,
            _SUB_LEN,
            _SUB_RBITS,
            _sub_radius(r),
            r,
            K.FLIP_MASKS,
            K.MASK_START,
            K._POP8,
        )
        if len(q8) >= self.sorted_batch_min and st.n_main >= self.sorted_batch_min_rows:
            return K.mih_query_batch_sorted(*args, _SORTED_BLOCK, 4 if st.n_main < 3_000_000 else 0)
        return K.mih_query_batch(*args)

    def query(self, hash, threshold: int = PDQ_DEFAULT_THRESHOLD) -> list[tuple[int, int]]:
        """Entries within ``threshold`` of ``hash`` as ``(entry id, distance)``, nearest first (ties by id)."""
        q8 = _as_hash_matrix(hash, "hash")
        if q8.shape[0] != 1:
            raise SafeholdError("index.bad_input", "query takes one hash; use query_batch")
        ids, d, _ = self._run(q8, threshold)
        return list(zip(ids.tolist(), d.tolist(), strict=True))

    def query_batch(self, hashes, threshold: int = PDQ_DEFAULT_THRESHOLD) -> list[list[tuple[int, int]]]:
        """``query`` for every row of an ``(q, 32) uint8`` array, in one kernel call."""
        q8 = _as_hash_matrix(hashes)
        if len(q8) == 0:
            return []
        ids, d, qoff = self._run(q8, threshold)
        pairs = list(zip(ids.tolist(), d.tolist(), strict=True))
        bounds = qoff.tolist()
        return [pairs[bounds[i] : bounds[i + 1]] for i in range(len(q8))]

    def query_batch_arrays(self, hashes, threshold: int = PDQ_DEFAULT_THRESHOLD):
        """Like ``query_batch`` but returns CSR arrays ``(ids, distances, offsets)`` without Python objects."""
        q8 = _as_hash_matrix(hashes)
        return self._run(q8, threshold)

    # ------------------------------------------------------------------ snapshots
    def save(self, path: str | os.PathLike) -> None:
        """Write a versioned, checksummed snapshot atomically (temp file + fsync + rename)."""
        path = Path(path)
        with self._wlock:
            st = self._state
            n = st.n_total
            arrays = {
                "hashes": st.h8[:n],
                "ids": st.ext[:n],
                "dead": st.dead[: n // 8 + 1],
                "offsets": st.offs,
                "post_ids": st.pids,
                "post_res": st.pres,
            }
            meta = {
                "format": "safehold.pdq_index",
                "version": _SNAPSHOT_VERSION,
                "n_main": int(st.n_main),
                "n_total": int(n),
                "n_dead": int(self._n_dead),
                "ext_sorted": bool(self._ext_sorted),
                "substrings": _SUB_LEN.tolist(),
                "bucket_bits": K.NBUCKET_BITS,
                "arrays": {},
            }
            # layout: magic | u32 version | u32 header_len | header json | u32 header crc | pad | arrays (64-aligned)
            # header size depends on offsets, so lay out with a fixed reserved header size
            reserve = 4096
            off = _ALIGN * math.ceil((len(_SNAPSHOT_MAGIC) + 8 + reserve + 4) / _ALIGN)
            for name, a in arrays.items():
                a = np.ascontiguousarray(a)
                arrays[name] = a
                meta["arrays"][name] = {
                    "dtype": a.dtype.str,
                    "shape": list(a.shape),
                    "offset": off,
                    "nbytes": int(a.nbytes),
                    "crc32": zlib.crc32(_raw(a)) & 0xFFFFFFFF,
                }
                off = _ALIGN * math.ceil((off + a.nbytes) / _ALIGN)
            meta["file_size"] = off
            hdr = json.dumps(meta, sort_keys=True).encode()
            if len(hdr) > reserve:
                raise SafeholdError("index.snapshot_invalid", "snapshot header too large")

            def write(f) -> None:
                f.write(_SNAPSHOT_MAGIC)
                f.write(np.array([_SNAPSHOT_VERSION, len(hdr)], dtype="<u4").tobytes())
                f.write(hdr)
                f.write(np.array([zlib.crc32(hdr) & 0xFFFFFFFF], dtype="<u4").tobytes())
                for name, a in arrays.items():
                    f.seek(meta["arrays"][name]["offset"])
                    f.write(_raw(a))
                f.truncate(off)

            write_atomically(path, write, mode="wb")

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True, verify: bool = True, **kw) -> PdqIndex:
        """Open a snapshot written by :meth:`save`.

        With ``mmap=True`` the arrays are memory-mapped copy-on-write (fast start, pages shared between processes
        until written). ``verify`` checks every array's CRC-32. A foreign, truncated or corrupt file raises
        ``SafeholdError('index.snapshot_invalid')``.
        """
        path = Path(path)

        def bad(why: str) -> SafeholdError:
            return SafeholdError(
                "index.snapshot_invalid", f"{path} is not a valid PDQ index snapshot: {why}", detail={"path": str(path)}
            )

        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                head = f.read(len(_SNAPSHOT_MAGIC) + 8)
                if len(head) < len(_SNAPSHOT_MAGIC) + 8 or head[: len(_SNAPSHOT_MAGIC)] != _SNAPSHOT_MAGIC:
                    raise bad("wrong magic (not a Safehold PDQ snapshot)")
                version, hlen = np.frombuffer(head[len(_SNAPSHOT_MAGIC) :], dtype="<u4").tolist()
                if version != _SNAPSHOT_VERSION:
                    raise bad(f"unsupported version {version}")
                if hlen > 1 << 20:
                    raise bad("header too large")
                hdr = f.read(hlen)
                crc = f.read(4)
                if len(hdr) != hlen or len(crc) != 4:
                    raise bad("truncated header")
                if int(np.frombuffer(crc, dtype="<u4")[0]) != zlib.crc32(hdr) & 0xFFFFFFFF:
                    raise bad("header checksum mismatch")
            meta = json.loads(hdr)
            if meta.get("format") != "safehold.pdq_index" or meta.get("substrings") != _SUB_LEN.tolist():
                raise bad("incompatible layout")
            if meta.get("file_size") != size:
                raise bad(f"size {size} != recorded {meta.get('file_size')} (truncated?)")
            arrays = {}
            for name in ("hashes", "ids", "dead", "offsets", "post_ids", "post_res"):
                spec = meta["arrays"][name]
                dt = np.dtype(spec["dtype"])
                shape = tuple(int(x) for x in spec["shape"])
                nbytes = int(np.prod(shape)) * dt.itemsize
                if nbytes != spec["nbytes"] or spec["offset"] + nbytes > size:
                    raise bad(f"array {name} out of bounds")
                if nbytes == 0:
                    a = np.empty(shape, dtype=dt)
                elif mmap:
                    a = np.asarray(np.memmap(path, dtype=dt, mode="c", offset=spec["offset"], shape=shape))
                else:
                    a = np.fromfile(path, dtype=dt, count=int(np.prod(shape)), offset=spec["offset"]).reshape(shape)
                if verify and (zlib.crc32(_raw(np.ascontiguousarray(a))) & 0xFFFFFFFF) != spec["crc32"]:
                    raise bad(f"array {name} checksum mismatch")
                arrays[name] = a
            n_main, n_total = int(meta["n_main"]), int(meta["n_total"])
            h8, ext, dead = arrays["hashes"], arrays["ids"], arrays["dead"]
            offs, pids, pres = arrays["offsets"], arrays["post_ids"], arrays["post_res"]
            if (
                h8.dtype != np.uint8
                or h8.shape != (n_total, HASH_BYTES)
                or ext.dtype != np.int64
                or ext.shape != (n_total,)
                or dead.dtype != np.uint8
                or dead.shape != (n_total // 8 + 1,)
                or offs.dtype != np.uint32
                or offs.shape != (N_SUBSTRINGS, K.NBUCKETS + 1)
                or pids.dtype != np.uint32
                or pids.shape != (N_SUBSTRINGS, n_main)
                or pres.dtype != np.uint8
                or pres.shape != (N_SUBSTRINGS, n_main)
                or not 0 <= n_main <= n_total
            ):
                raise bad("array shapes inconsistent")
            if n_main and (int(offs[:, -1].min()) != n_main or int(offs[:, -1].max()) != n_main):
                raise bad("postings inconsistent")
        except SafeholdError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise bad(f"{type(e).__name__}: {e}") from None
        idx = cls(**kw)
        if n_total == 0:
            return idx
        idx._state = _State(h8, ext, dead, offs, pids, pres, n_main, n_total)
        idx._n_dead = int(meta["n_dead"])
        idx._ext_sorted = bool(meta["ext_sorted"])
        return idx

    # ------------------------------------------------------------------ misc
    def hashes_of(self, ids: Iterable[int]) -> np.ndarray:
        """Live hashes stored under ``ids`` (diagnostics)."""
        st = self._state
        ids = _as_ids(list(ids))
        rows = np.flatnonzero(np.isin(st.ext[: st.n_total], ids))
        rows = rows[((st.dead[rows >> 3] >> (rows & 7)) & 1) == 0]
        return st.h8[rows].copy()
