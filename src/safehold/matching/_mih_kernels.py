"""Numba kernels for the PDQ multi-index-hashing index (private to :mod:`safehold.matching.pdq_index`).

Layout shared with ``pdq_index``:

* ``h8``  (cap, 32) uint8 — hashes, row = internal id; ``h64`` is the same memory viewed as (cap, 4) uint64.
* ``dead`` (cap//8+1,) uint8 — tombstone bitmap, bit set = deleted.
* ``ext`` (cap,) int64 — external entry id per row.
* ``offs`` (m, 65537) uint32 — CSR offsets per substring, bucket = top 16 bits of the substring.
* ``pids`` (m, n_main) uint32 — row ids in bucket order; ``pres`` (m, n_main) uint8 — low bits of the substring.
* ``sub_start``/``sub_len``/``sub_rbits`` (m,) int64 — bit position, length and residual width per substring.

Everything here is nopython, ``nogil`` (queries from several threads run in parallel) and cached.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

NBUCKET_BITS = 16
NBUCKETS = 1 << NBUCKET_BITS
_SWAR_MAX = 64  # exact-residual buckets up to this size are scanned 8 at a time, larger ones binary-searched


@intrinsic
def _popcnt64(typingctx, x):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Software prefetch of ``arr[idx]`` (1-D array) into all cache levels (``llvm.prefetch``)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _load_u64(typingctx, arr, idx):
    """Unaligned little-endian load of the 8 bytes ``arr[idx:idx + 8]`` (1-D uint8 array) as one uint64.

    The caller guarantees ``idx + 8 <= arr.shape[0]``."""
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        p64 = builder.bitcast(ptr, ir.IntType(64).as_pointer())
        return builder.load(p64, align=1)

    return sig, codegen


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_POP16 = np.array([bin(i).count("1") for i in range(NBUCKETS)], dtype=np.uint8)
_BYTE_MASK = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [2**64 - 1], dtype=np.uint64)  # low i bytes
# All 16-bit flip masks ordered by popcount; MASK_START[c] = first mask with popcount c.
FLIP_MASKS = np.argsort(_POP16, kind="stable").astype(np.uint32)
MASK_START = np.searchsorted(_POP16[FLIP_MASKS], np.arange(18)).astype(np.int64)


@njit(cache=True, nogil=True, inline="always")
def _dist(h64, row, q0, q1, q2, q3):
    return np.int64(
        _popcnt64(h64[row, 0] ^ q0)
        + _popcnt64(h64[row, 1] ^ q1)
        + _popcnt64(h64[row, 2] ^ q2)
        + _popcnt64(h64[row, 3] ^ q3)
    )


@njit(cache=True, nogil=True, inline="always")
def _scan3(pres, lo, hi, qres, kk, cand, nc):
    """``_scan_bucket`` for a bucket of <= 24 postings (caller checks ``lo + 24 <= pres.shape[0]``).

    Three 8-byte words, straight-line code, no data-dependent loop exit: a SWAR popcount per byte of
    ``residual ^ qres`` and a per-byte ``<= kk`` test (no carry between bytes: counts are <= 8). Called from the
    probe loops directly rather than through ``_scan_bucket``: in a function with loops numba keeps per-call
    array reference counting, which cost more than the scan itself (measured ~60 vs ~10 ns per probe)."""
    qq = np.uint64(qres) * np.uint64(0x0101010101010101)
    m1 = np.uint64(0x5555555555555555)
    m2 = np.uint64(0x3333333333333333)
    m4 = np.uint64(0x0F0F0F0F0F0F0F0F)
    hi1 = np.uint64(0x8080808080808080)
    bias = np.uint64(0x7F - kk) * np.uint64(0x0101010101010101)
    ln = hi - lo
    x0 = _load_u64(pres, lo) ^ qq
    x1 = _load_u64(pres, lo + 8) ^ qq
    x2 = _load_u64(pres, lo + 16) ^ qq
    x0 = x0 - ((x0 >> np.uint64(1)) & m1)
    x1 = x1 - ((x1 >> np.uint64(1)) & m1)
    x2 = x2 - ((x2 >> np.uint64(1)) & m1)
    x0 = (x0 & m2) + ((x0 >> np.uint64(2)) & m2)
    x1 = (x1 & m2) + ((x1 >> np.uint64(2)) & m2)
    x2 = (x2 & m2) + ((x2 >> np.uint64(2)) & m2)
    x0 = (x0 + (x0 >> np.uint64(4))) & m4
    x1 = (x1 + (x1 >> np.uint64(4))) & m4
    x2 = (x2 + (x2 >> np.uint64(4))) & m4
    z0 = ~(x0 + bias) & hi1 & _BYTE_MASK[min(ln, 8)]
    z1 = ~(x1 + bias) & hi1 & _BYTE_MASK[min(max(ln - 8, 0), 8)]
    z2 = ~(x2 + bias) & hi1 & _BYTE_MASK[max(ln - 16, 0)]
    if z0 | z1 | z2:
        while z0:
            cand[nc] = lo + np.int64(_popcnt64((z0 & (~z0 + np.uint64(1))) - np.uint64(1)) >> np.uint64(3))
            nc += 1
            z0 &= z0 - np.uint64(1)
        while z1:
            cand[nc] = lo + 8 + np.int64(_popcnt64((z1 & (~z1 + np.uint64(1))) - np.uint64(1)) >> np.uint64(3))
            nc += 1
            z1 &= z1 - np.uint64(1)
        while z2:
            cand[nc] = lo + 16 + np.int64(_popcnt64((z2 & (~z2 + np.uint64(1))) - np.uint64(1)) >> np.uint64(3))
            nc += 1
            z2 &= z2 - np.uint64(1)
    return nc


@njit(cache=True, nogil=True, inline="always")
def _scan_bucket(pres, lo, hi, qres, kk, pop8, cand, nc):
    """Append to cand[nc:] every posting j in [lo, hi) with popcount(pres[j] ^ qres) <= kk; returns new nc.

    The caller guarantees room for hi - lo more candidates. Buckets of <= 24 postings go through ``_scan3`` (called
    by the probe loops directly); here: exact residuals in buckets <= 64 word-wise, larger ones by binary search;
    otherwise a branch-free byte loop (a word-wise scan with bit extraction was slower for k > 0)."""
    if kk == 0 and hi - lo <= _SWAR_MAX and hi + 8 <= pres.shape[0]:
        # exact residual in a small bucket: 8 residuals per step (SWAR zero-byte test, exact: no carry between
        # bytes); matches are rare (1/128–1/256 per posting), so the extraction loop almost never runs
        qq = np.uint64(qres) * np.uint64(0x0101010101010101)
        lo7 = np.uint64(0x7F7F7F7F7F7F7F7F)
        hi1 = np.uint64(0x8080808080808080)
        for j in range(lo, hi, 8):
            w = _load_u64(pres, j) ^ qq
            z = ~(((w & lo7) + lo7) | w) & hi1
            if hi - j < 8:
                z &= (np.uint64(1) << np.uint64(8 * (hi - j))) - np.uint64(1)
            while z:
                cand[nc] = j + np.int64(_popcnt64((z & (~z + np.uint64(1))) - np.uint64(1)) >> np.uint64(3))
                nc += 1
                z &= z - np.uint64(1)
        return nc
    if kk == 0 and hi - lo > 8:
        # postings are sorted by residual within a bucket: branch-free lower bound, then the equal run
        base = lo
        length = hi - lo
        while length > 1:
            half = length >> 1
            base = base + half if pres[base + half - 1] < qres else base
            length -= half
        if length == 1 and pres[base] < qres:
            base += 1
        while base < hi and pres[base] == qres:
            cand[nc] = base
            nc += 1
            base += 1
        return nc
    for j in range(lo, hi):  # branch-free: store always, advance when it passes
        cand[nc] = j
        nc += np.int64(pop8[pres[j] ^ qres]) <= kk
    return nc


@njit(cache=True, nogil=True, inline="always")
def _subkey(h8, row, start, length):
    b0 = start >> 3
    v = np.uint32(0)
    for i in range(4):
        v = v << np.uint32(8)
        if b0 + i < 32:
            v = v | np.uint32(h8[row, b0 + i])
    shift = 32 - (start & 7) - length
    return (v >> np.uint32(shift)) & np.uint32((1 << length) - 1)


@njit(cache=True, nogil=True, inline="always")
def _found_earlier(h8, row, q8, qi, s, sub_start, sub_len, sub_radius):
    """True if a substring before ``s`` also reaches ``row`` (so that substring already reported it).

    Probing is exact per substring, so a row is reported only by the first substring within its radius: each
    match comes out once without a per-query 'seen' set."""
    for t in range(s):
        k = sub_radius[t]
        if k < 0:
            continue
        x = _subkey(h8, row, sub_start[t], sub_len[t]) ^ _subkey(q8, qi, sub_start[t], sub_len[t])
        if np.int64(_popcnt64(np.uint64(x))) <= k:
            return True
    return False


@njit(cache=True, nogil=True)
def _sort_rows(h8, lo, hi, start, length, rb):
    """Rows [lo, hi) ordered by (bucket = top 16 bits, residual) of one substring (two-pass LSD counting sort).

    Returns (rows in order, their keys, bucket prefix counts (NBUCKETS + 1))."""
    n = hi - lo
    keys = np.empty(n, dtype=np.uint32)
    for r in range(lo, hi):
        keys[r - lo] = _subkey(h8, r, start, length)
    rmask = np.uint32((1 << rb) - 1)
    rcnt = np.zeros(257, dtype=np.int64)
    bcnt = np.zeros(NBUCKETS + 1, dtype=np.int64)
    for i in range(n):
        rcnt[(keys[i] & rmask) + 1] += 1
        bcnt[(keys[i] >> rb) + 1] += 1
    for v in range(256):
        rcnt[v + 1] += rcnt[v]
    for b in range(NBUCKETS):
        bcnt[b + 1] += bcnt[b]
    tmp = np.empty(n, dtype=np.int64)
    for i in range(n):
        v = keys[i] & rmask
        tmp[rcnt[v]] = i
        rcnt[v] += 1
    order = np.empty(n, dtype=np.int64)
    cur = bcnt[:NBUCKETS].copy()
    for t in range(n):
        i = tmp[t]
        b = keys[i] >> rb
        order[cur[b]] = i
        cur[b] += 1
    skeys = np.empty(n, dtype=np.uint32)
    for t in range(n):
        skeys[t] = keys[order[t]]
        order[t] += lo
    return order, skeys, bcnt


@njit(cache=True, nogil=True)
def build_postings(h8, n, sub_start, sub_len, sub_rbits, offs, pids, pres):
    """Fill CSR postings for rows [0, n) of every substring; within a bucket postings are sorted by residual."""
    m = sub_start.shape[0]
    for s in range(m):
        rb = sub_rbits[s]
        rmask = np.uint32((1 << rb) - 1)
        order, skeys, bcnt = _sort_rows(h8, np.int64(0), np.int64(n), sub_start[s], sub_len[s], rb)
        for b in range(NBUCKETS + 1):
            offs[s, b] = bcnt[b]
        for t in range(n):
            pids[s, t] = order[t]
            pres[s, t] = skeys[t] & rmask


@njit(cache=True, nogil=True)
def merge_postings(h8, offs, pids, pres, n_main, n_new, sub_start, sub_len, sub_rbits, noffs, npids, npres):
    """Linear merge of rows [n_main, n_new) into existing postings (old postings are not re-sorted: each bucket is
    a two-way merge of its old run and the new rows' run, both ordered by residual).

    Tombstoned delta rows are still indexed so row numbers stay dense; the tombstone bitmap filters them."""
    m = sub_start.shape[0]
    for s in range(m):
        rb = sub_rbits[s]
        rmask = np.uint32((1 << rb) - 1)
        order, skeys, dcnt = _sort_rows(h8, n_main, n_new, sub_start[s], sub_len[s], rb)
        for b in range(NBUCKETS + 1):
            noffs[s, b] = np.int64(offs[s, b]) + dcnt[b]
        for b in range(NBUCKETS):
            i = np.int64(offs[s, b])
            i1 = np.int64(offs[s, b + 1])
            j = dcnt[b]
            j1 = dcnt[b + 1]
            p = np.int64(noffs[s, b])
            while i < i1 or j < j1:
                if j >= j1 or (i < i1 and pres[s, i] <= (skeys[j] & rmask)):
                    npids[s, p] = pids[s, i]
                    npres[s, p] = pres[s, i]
                    i += 1
                else:
                    npids[s, p] = order[j]
                    npres[s, p] = skeys[j] & rmask
                    j += 1
                p += 1


@njit(cache=True, nogil=True, inline="always")
def _is_dead(dead, row):
    return (dead[row >> 3] >> (row & 7)) & 1


@njit(cache=True, nogil=True)
def _grow(buf, need):
    if need <= buf.shape[0]:
        return buf
    nb = np.empty(max(need, buf.shape[0] * 2), dtype=buf.dtype)
    nb[: buf.shape[0]] = buf
    return nb


@njit(cache=True, nogil=True)
def _mih_one(
    q8,
    qi,
    q64,
    h8,
    h64,
    h64f,
    dead,
    ob,
    od,
    oshift,
    pids,
    pres,
    n_main,
    n_total,
    sub_start,
    sub_len,
    sub_rbits,
    sub_radius,
    r,
    masks,
    mask_start,
    pop8,
    rows,
    dists,
    cnt,
    pb,
    pk,
    pq,
    po1,
    cand,
):
    """Append (row, dist) of every live row within ``r`` of query ``qi`` to rows/dists[cnt:].

    Work is staged so that independent cache misses overlap: (A) enumerate every probe bucket of every substring
    and prefetch its offsets, (B) read the bucket bounds and prefetch the residuals, (C) scan residuals and collect
    candidate postings, prefetching their row ids, (D) fetch the rows and prefetch their hashes, (E) verify.
    """
    q0 = q64[qi, 0]
    q1 = q64[qi, 1]
    q2 = q64[qi, 2]
    q3 = q64[qi, 3]
    m = sub_start.shape[0]
    stride = NBUCKETS + 1
    if n_main > 0:
        npb = 0
        for s in range(m):
            k = sub_radius[s]
            if k < 0:
                continue
            rb = sub_rbits[s]
            key = _subkey(q8, qi, sub_start[s], sub_len[s])
            qtop = np.int64(key >> rb)
            qres = np.uint8(key & np.uint32((1 << rb) - 1))
            base = s * stride
            for pi in range(mask_start[k + 1]):
                msk = np.int64(masks[pi])
                idx = base + (qtop ^ msk)
                pb[npb] = idx
                pk[npb] = k - np.int64(pop8[msk & 255]) - np.int64(pop8[msk >> 8])
                pq[npb] = qres
                _prefetch(od, idx)
                npb += 1
        nblk = (NBUCKETS >> oshift) + 1
        tot = 0
        for i in range(npb):
            g = pb[i]
            s = g // stride
            b = g - s * stride
            o0 = s * n_main + np.int64(ob[s * nblk + (b >> oshift)]) + np.int64(od[g])
            po1[i] = s * n_main + np.int64(ob[s * nblk + ((b + 1) >> oshift)]) + np.int64(od[g + 1])
            pb[i] = o0
            tot += po1[i] - o0
            _prefetch(pres, o0)
        # size the candidate buffer once: reassigning an array inside the scan loop costs reference counting
        # on every iteration
        cand = _grow(cand, tot)
        nc = 0
        plen = pres.shape[0]
        for i in range(npb):
            kk = pk[i]
            qres = pq[i]
            lo = pb[i]
            hi = po1[i]
            if hi - lo <= 24 and lo + 24 <= plen:
                nc = _scan3(pres, lo, hi, qres, kk, cand, nc)
            else:
                nc = _scan_bucket(pres, lo, hi, qres, kk, pop8, cand, nc)
        for c in range(nc):
            _prefetch(pids, cand[c])
        for c in range(nc):
            _prefetch(h64f, np.int64(pids[cand[c]]) * 4)
        if cnt + nc > rows.shape[0]:
            rows = _grow(rows, cnt + nc)
            dists = _grow(dists, cnt + nc)
        for c in range(nc):
            j = cand[c]
            row = np.int64(pids[j])
            d = np.int64(_dist(h64, row, q0, q1, q2, q3))
            if (
                d <= r
                and not _is_dead(dead, row)
                and not _found_earlier(h8, row, q8, qi, j // n_main, sub_start, sub_len, sub_radius)
            ):
                rows[cnt] = row
                dists[cnt] = d
                cnt += 1
    # delta buffer: brute force, in chunks so the hot loop never reallocates
    for c0 in range(n_main, n_total, 1024):
        c1 = min(n_total, c0 + 1024)
        if cnt + (c1 - c0) > rows.shape[0]:
            rows = _grow(rows, cnt + (c1 - c0))
            dists = _grow(dists, cnt + (c1 - c0))
        for row in range(c0, c1):
            d = _dist(h64, row, q0, q1, q2, q3)
            rows[cnt] = row
            dists[cnt] = d
            cnt += (d <= r) & (1 - _is_dead(dead, row))
    return rows, dists, cnt, cand


@njit(cache=True, nogil=True)
def _finish(rows, dists, lo, hi, ext, out_ids, out_d, ocnt):
    """Deduplicate rows[lo:hi] by external id (keeping the smallest distance), order by (distance, id)."""
    n = hi - lo
    if n == 0:
        return out_ids, out_d, ocnt
    if n <= 96:
        # small result lists (the common case): in-place insertion sorts straight into the output buffer
        out_ids = _grow(out_ids, ocnt + n)
        out_d = _grow(out_d, ocnt + n)
        for i in range(n):  # order by (ext, dist)
            ei = ext[rows[lo + i]]
            di = dists[lo + i]
            j = ocnt + i
            while j > ocnt and (out_ids[j - 1] > ei or (out_ids[j - 1] == ei and out_d[j - 1] > di)):
                out_ids[j] = out_ids[j - 1]
                out_d[j] = out_d[j - 1]
                j -= 1
            out_ids[j] = ei
            out_d[j] = di
        u = ocnt
        for i in range(ocnt, ocnt + n):  # keep the nearest hash per entry id
            if i == ocnt or out_ids[i] != out_ids[u - 1]:
                out_ids[u] = out_ids[i]
                out_d[u] = out_d[i]
                u += 1
        for i in range(ocnt, u):  # order by (dist, ext); stable on ext-sorted input
            ei = out_ids[i]
            di = out_d[i]
            j = i
            while j > ocnt and out_d[j - 1] > di:
                out_ids[j] = out_ids[j - 1]
                out_d[j] = out_d[j - 1]
                j -= 1
            out_ids[j] = ei
            out_d[j] = di
        return out_ids, out_d, u
    e = np.empty(n, dtype=np.int64)
    d = np.empty(n, dtype=np.int64)
    for i in range(n):
        e[i] = ext[rows[lo + i]]
        d[i] = dists[lo + i]
    # sort by (ext, dist) via two stable sorts
    o1 = np.argsort(d, kind="mergesort")
    e1 = e[o1]
    o2 = np.argsort(e1, kind="mergesort")
    es = e1[o2]
    ds = d[o1][o2]
    ue = np.empty(n, dtype=np.int64)
    ud = np.empty(n, dtype=np.int64)
    u = 0
    for i in range(n):
        if i == 0 or es[i] != es[i - 1]:
            ue[u] = es[i]
            ud[u] = ds[i]
            u += 1
    ue = ue[:u]
    ud = ud[:u]
    o3 = np.argsort(ud, kind="mergesort")  # ue already ascending -> ties ordered by id
    need = ocnt + u
    out_ids = _grow(out_ids, need)
    out_d = _grow(out_d, need)
    for i in range(u):
        out_ids[ocnt + i] = ue[o3[i]]
        out_d[ocnt + i] = ud[o3[i]]
    return out_ids, out_d, need


@njit(cache=True, nogil=True)
def mih_query_batch(
    q8,
    q64,
    h8,
    h64,
    dead,
    ext,
    ob,
    od,
    oshift,
    pids,
    pres,
    n_main,
    n_total,
    sub_start,
    sub_len,
    sub_rbits,
    sub_radius,
    r,
    masks,
    mask_start,
    pop8,
):
    """Exact range query of every row of q8/q64; returns (ids, dists, qoff) in CSR form.

    ``offs``/``pids``/``pres`` are the flattened (C-order) postings arrays.
    """
    nq = q8.shape[0]
    h64f = h64.reshape(-1)
    nprobe = 0
    for s in range(sub_start.shape[0]):
        if sub_radius[s] >= 0:
            nprobe += mask_start[min(sub_radius[s], 16) + 1]
    pb = np.empty(nprobe, dtype=np.int64)
    pk = np.empty(nprobe, dtype=np.int64)
    pq = np.empty(nprobe, dtype=np.uint8)
    po1 = np.empty(nprobe, dtype=np.int64)
    cand = np.empty(4096, dtype=np.int64)
    rows = np.empty(256, dtype=np.int64)
    dists = np.empty(256, dtype=np.int64)
    out_ids = np.empty(max(16, nq * 4), dtype=np.int64)
    out_d = np.empty(max(16, nq * 4), dtype=np.int64)
    qoff = np.zeros(nq + 1, dtype=np.int64)
    ocnt = 0
    for qi in range(nq):
        rows, dists, cnt, cand = _mih_one(
            q8,
            qi,
            q64,
            h8,
            h64,
            h64f,
            dead,
            ob,
            od,
            oshift,
            pids,
            pres,
            n_main,
            n_total,
            sub_start,
            sub_len,
            sub_rbits,
            sub_radius,
            r,
            masks,
            mask_start,
            pop8,
            rows,
            dists,
            np.int64(0),
            pb,
            pk,
            pq,
            po1,
            cand,
        )
        out_ids, out_d, ocnt = _finish(rows, dists, np.int64(0), cnt, ext, out_ids, out_d, ocnt)
        qoff[qi + 1] = ocnt
    return out_ids[:ocnt], out_d[:ocnt], qoff


@njit(cache=True, nogil=True)
def brute_query_batch(q64, h64, dead, ext, n_total, r):
    """Exact brute-force range query (used when probing would cost more than a scan, e.g. large r).

    Scans the table in blocks so a block stays in cache while all queries are compared against it.
    """
    nq = q64.shape[0]
    block = 4096
    # per-query growable lists kept in one buffer per query would be complex; collect (q, row, d) triples
    qs = np.empty(1024, dtype=np.int64)
    rows = np.empty(1024, dtype=np.int64)
    ds = np.empty(1024, dtype=np.int64)
    cnt = 0
    for b0 in range(0, n_total, block):
        b1 = min(n_total, b0 + block)
        for qi in range(nq):
            q0 = q64[qi, 0]
            q1 = q64[qi, 1]
            q2 = q64[qi, 2]
            q3 = q64[qi, 3]
            if cnt + (b1 - b0) > qs.shape[0]:
                qs = _grow(qs, cnt + (b1 - b0))
                rows = _grow(rows, cnt + (b1 - b0))
                ds = _grow(ds, cnt + (b1 - b0))
            for row in range(b0, b1):
                d = _dist(h64, row, q0, q1, q2, q3)
                qs[cnt] = qi
                rows[cnt] = row
                ds[cnt] = d
                cnt += (d <= r) & (1 - _is_dead(dead, row))
    # group by query
    order = np.argsort(qs[:cnt], kind="mergesort")
    srows = rows[:cnt][order]
    sds = ds[:cnt][order]
    sqs = qs[:cnt][order]
    out_ids = np.empty(max(16, cnt), dtype=np.int64)
    out_d = np.empty(max(16, cnt), dtype=np.int64)
    qoff = np.zeros(nq + 1, dtype=np.int64)
    ocnt = 0
    i = 0
    for qi in range(nq):
        j = i
        while j < cnt and sqs[j] == qi:
            j += 1
        out_ids, out_d, ocnt = _finish(srows, sds, i, j, ext, out_ids, out_d, ocnt)
        qoff[qi + 1] = ocnt
        i = j
    return out_ids[:ocnt], out_d[:ocnt], qoff


@njit(cache=True, nogil=True)
def count_within(q64, h64, n, r):
    """Number of rows [0, n) within r of each query (test / benchmark ground truth helper)."""
    nq = q64.shape[0]
    out = np.zeros(nq, dtype=np.int64)
    for qi in range(nq):
        q0 = q64[qi, 0]
        q1 = q64[qi, 1]
        q2 = q64[qi, 2]
        q3 = q64[qi, 3]
        c = 0
        for row in range(n):
            if _dist(h64, row, q0, q1, q2, q3) <= r:
                c += 1
        out[qi] = c
    return out


@njit(cache=True, nogil=True)
def _walk(pres, plen, plo, phi, sk, sr, sq, t0, p, s, pop8, cj, cq, cs, nc):
    """Scan probes t0.. of one substring into (cj, cq, cs)[nc:]; stops early (returns the probe index) when the
    buffers might overflow, so the caller grows them outside this loop."""
    cap = cj.shape[0]
    for t in range(t0, p):
        lo = plo[t]
        hi = phi[t]
        if nc + hi - lo > cap:
            return t, nc
        kk = np.int64(sk[t])
        qres = sr[t]
        qi = sq[t]
        n0 = nc
        if hi - lo <= 24 and lo + 24 <= plen:
            nc = _scan3(pres, lo, hi, qres, kk, cj, nc)
        else:
            nc = _scan_bucket(pres, lo, hi, qres, kk, pop8, cj, nc)
        for c in range(n0, nc):
            cq[c] = qi
            cs[c] = s
    return p, nc


@njit(cache=True, nogil=True)
def _mih_block_sorted(
    q8,
    q64,
    qlo,
    qhi,
    h8,
    h64,
    h64f,
    dead,
    ob,
    od,
    oshift,
    pids,
    pres,
    n_main,
    n_total,
    sub_start,
    sub_len,
    sub_rbits,
    sub_radius,
    r,
    masks,
    mask_start,
    pop8,
    nprobe_per_q,
    rq,
    rrow,
    rd,
    rcnt,
    gshift,
):
    """Probe-major MIH for queries [qlo, qhi): every probe of every query is generated first, counting-sorted by
    bucket, and the postings are then walked in address order (near-sequential memory access instead of one
    random access per probe). Candidates are verified in posting order with hash prefetch. Appends (query, row,
    dist) triples to rq/rrow/rd."""
    m = sub_start.shape[0]
    stride = NBUCKETS + 1
    nq = qhi - qlo
    maxp = 0
    for s in range(m):
        if sub_radius[s] >= 0:
            maxp = max(maxp, mask_start[sub_radius[s] + 1])
    P = nq * maxp
    gkey = np.empty(P, dtype=np.int32)
    gq = np.empty(P, dtype=np.int32)
    gk = np.empty(P, dtype=np.int8)
    gr = np.empty(P, dtype=np.uint8)
    sq = np.empty(P, dtype=np.int32)
    sk = np.empty(P, dtype=np.int8)
    sr = np.empty(P, dtype=np.uint8)
    sg = np.empty(P, dtype=np.int32)
    plo = np.empty(P, dtype=np.int64)
    phi = np.empty(P, dtype=np.int64)
    cnt = np.empty((NBUCKETS >> gshift) + 1, dtype=np.int64)
    cj = np.empty(max(1024, 4 * P), dtype=np.int64)
    cq = np.empty(max(1024, 4 * P), dtype=np.int32)
    cs = np.empty(max(1024, 4 * P), dtype=np.int8)
    nc = 0
    for s in range(m):  # one substring at a time
        k = sub_radius[s]
        if k < 0:
            continue
        rb = sub_rbits[s]
        npq = mask_start[k + 1]
        p = 0
        for qi in range(qlo, qhi):
            key = _subkey(q8, qi, sub_start[s], sub_len[s])
            qtop = np.int64(key >> rb)
            qres = np.uint8(key & np.uint32((1 << rb) - 1))
            for pi in range(npq):
                msk = np.int64(masks[pi])
                gkey[p] = qtop ^ msk
                gq[p] = qi
                gk[p] = k - np.int64(pop8[msk & 255]) - np.int64(pop8[msk >> 8])
                gr[p] = qres
                p += 1
        # counting sort by bucket (gshift = 0) or by groups of 2**gshift buckets, so the postings are walked in
        # (near) address order; with coarse groups (small indexes) the counters stay in L1 and the prefix sum
        # is short even for small blocks of queries
        cnt[:] = 0
        for i in range(p):
            cnt[(gkey[i] >> gshift) + 1] += 1
        for b in range(NBUCKETS >> gshift):
            cnt[b + 1] += cnt[b]
        for i in range(p):
            b = gkey[i]
            t = cnt[b >> gshift]
            cnt[b >> gshift] = t + 1
            sq[t] = gq[i]
            sk[t] = gk[i]
            sr[t] = gr[i]
            sg[t] = b
        # walk this substring's postings in (near) address order
        obase = s * stride
        bbase = s * ((NBUCKETS >> oshift) + 1)
        pbase = s * n_main
        plen = pres.shape[0]
        for t in range(p):  # bucket bounds first
            b = np.int64(sg[t])
            g = obase + b
            lo = pbase + np.int64(ob[bbase + (b >> oshift)]) + np.int64(od[g])
            hi = pbase + np.int64(ob[bbase + ((b + 1) >> oshift)]) + np.int64(od[g + 1])
            plo[t] = lo
            phi[t] = hi
        t = 0
        while t < p:
            t, nc = _walk(pres, plen, plo, phi, sk, sr, sq, t, p, s, pop8, cj, cq, cs, nc)
            if t < p:  # out of room: grow outside the scan loop (no array reassignment in the hot loop)
                need = nc + phi[t] - plo[t] + (cj.shape[0] >> 1)
                cj = _grow(cj, need)
                cq = _grow(cq, need)
                cs = _grow(cs, need)
    for c in range(nc):
        cj[c] = np.int64(pids[cj[c]])
    # coarse counting sort of the candidates by row (blocks of 1024 rows = 32 KB of hashes), so verification
    # walks the hash table forwards instead of jumping at random
    shift = 10
    nbk = (n_main >> shift) + 1
    bc = np.zeros(nbk + 1, dtype=np.int64)
    for c in range(nc):
        bc[(cj[c] >> shift) + 1] += 1
    for b in range(nbk):
        bc[b + 1] += bc[b]
    vr = np.empty(nc, dtype=np.int64)
    vq = np.empty(nc, dtype=np.int32)
    vs = np.empty(nc, dtype=np.int8)
    for c in range(nc):
        b = cj[c] >> shift
        t = bc[b]
        bc[b] = t + 1
        vr[t] = cj[c]
        vq[t] = cq[c]
        vs[t] = cs[c]
    AHEAD = 16
    for c in range(min(AHEAD, nc)):
        _prefetch(h64f, vr[c] * 4)
    if rcnt + nc > rq.shape[0]:
        rq = _grow(rq, rcnt + nc)
        rrow = _grow(rrow, rcnt + nc)
        rd = _grow(rd, rcnt + nc)
    for c in range(nc):
        if c + AHEAD < nc:
            _prefetch(h64f, vr[c + AHEAD] * 4)
        row = vr[c]
        qi = vq[c]
        d = _dist(h64, row, q64[qi, 0], q64[qi, 1], q64[qi, 2], q64[qi, 3])
        if d <= r and not _is_dead(dead, row):
            if not _found_earlier(h8, row, q8, qi, np.int64(vs[c]), sub_start, sub_len, sub_radius):
                rq[rcnt] = qi
                rrow[rcnt] = row
                rd[rcnt] = d
                rcnt += 1
    # delta rows: brute force
    nd = n_total - n_main
    if nd > 0:
        for qi in range(qlo, qhi):
            if rcnt + nd > rq.shape[0]:
                rq = _grow(rq, rcnt + nd)
                rrow = _grow(rrow, rcnt + nd)
                rd = _grow(rd, rcnt + nd)
            q0 = q64[qi, 0]
            q1 = q64[qi, 1]
            q2 = q64[qi, 2]
            q3 = q64[qi, 3]
            for row in range(n_main, n_total):
                d = _dist(h64, row, q0, q1, q2, q3)
                rq[rcnt] = qi
                rrow[rcnt] = row
                rd[rcnt] = d
                rcnt += (d <= r) & (1 - _is_dead(dead, row))
    return rq, rrow, rd, rcnt


@njit(cache=True, nogil=True)
def mih_query_batch_sorted(
    q8,
    q64,
    h8,
    h64,
    dead,
    ext,
    ob,
    od,
    oshift,
    pids,
    pres,
    n_main,
    n_total,
    sub_start,
    sub_len,
    sub_rbits,
    sub_radius,
    r,
    masks,
    mask_start,
    pop8,
    block,
    gshift=0,
):
    """Batch variant of ``mih_query_batch`` for many queries (probe-major, see ``_mih_block_sorted``)."""
    nq = q8.shape[0]
    h64f = h64.reshape(-1)
    nprobe = 0
    for s in range(sub_start.shape[0]):
        if sub_radius[s] >= 0:
            nprobe += mask_start[min(sub_radius[s], 16) + 1]
    rq = np.empty(max(1024, nq * 8), dtype=np.int64)
    rrow = np.empty(max(1024, nq * 8), dtype=np.int64)
    rd = np.empty(max(1024, nq * 8), dtype=np.int64)
    rcnt = np.int64(0)
    for qlo in range(0, nq, block):
        qhi = min(nq, qlo + block)
        if n_main > 0:
            rq, rrow, rd, rcnt = _mih_block_sorted(
                q8,
                q64,
                qlo,
                qhi,
                h8,
                h64,
                h64f,
                dead,
                ob,
                od,
                oshift,
                pids,
                pres,
                n_main,
                n_total,
                sub_start,
                sub_len,
                sub_rbits,
                sub_radius,
                r,
                masks,
                mask_start,
                pop8,
                nprobe,
                rq,
                rrow,
                rd,
                rcnt,
                gshift,
            )
        else:
            for qi in range(qlo, qhi):
                q0 = q64[qi, 0]
                q1 = q64[qi, 1]
                q2 = q64[qi, 2]
                q3 = q64[qi, 3]
                if rcnt + n_total > rq.shape[0]:
                    rq = _grow(rq, rcnt + n_total)
                    rrow = _grow(rrow, rcnt + n_total)
                    rd = _grow(rd, rcnt + n_total)
                for row in range(n_total):
                    d = _dist(h64, row, q0, q1, q2, q3)
                    rq[rcnt] = qi
                    rrow[rcnt] = row
                    rd[rcnt] = d
                    rcnt += (d <= r) & (1 - _is_dead(dead, row))
    # group by query (counting sort), then dedupe/order each query's hits
    qc = np.zeros(nq + 1, dtype=np.int64)
    for i in range(rcnt):
        qc[rq[i] + 1] += 1
    for qi in range(nq):
        qc[qi + 1] += qc[qi]
    cur = qc[:nq].copy()
    grow_ = np.empty(rcnt, dtype=np.int64)
    gd = np.empty(rcnt, dtype=np.int64)
    for i in range(rcnt):
        t = cur[rq[i]]
        cur[rq[i]] = t + 1
        grow_[t] = rrow[i]
        gd[t] = rd[i]
    out_ids = np.empty(max(16, rcnt), dtype=np.int64)
    out_d = np.empty(max(16, rcnt), dtype=np.int64)
    qoff = np.zeros(nq + 1, dtype=np.int64)
    ocnt = 0
    for qi in range(nq):
        out_ids, out_d, ocnt = _finish(grow_, gd, qc[qi], qc[qi + 1], ext, out_ids, out_d, ocnt)
        qoff[qi + 1] = ocnt
    return out_ids[:ocnt], out_d[:ocnt], qoff
