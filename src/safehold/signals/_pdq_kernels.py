"""Numba kernels for PDQ: luminance, the Jarosz box passes and the 64→16 DCT.

Every kernel keeps the *arithmetic order and precision* of Meta's C++ reference (``pdq/cpp``): float32 values,
a running box sum that adds the entering sample and subtracts the leaving one, and DCT sums accumulated one
term at a time. That is what makes our hash bit-identical to the reference (and to ``pdqhash``, which compiles
the same C++) when both get the same RGB pixels. Nothing here uses ``fastmath``: reassociating the sums would
change bits.

The kernels are compiled lazily on first use and cached on disk (``cache=True``); a cold start compiles them
once (about 1–2 s), later processes load the cache (tens of milliseconds).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_LUMA_R = np.float32(0.299)
_LUMA_G = np.float32(0.587)
_LUMA_B = np.float32(0.114)


@nb.njit(cache=True, nogil=True)
def luma_from_rgb(rgb, out):  # pragma: no cover - compiled
    """``out = 0.299 R + 0.587 G + 0.114 B`` in float32, left to right, as the C++ does (flat loop:
    vectorises)."""
    src = rgb.reshape(-1)
    dst = out.reshape(-1)
    for p in range(dst.size):
        r = np.float32(src[3 * p])
        g = np.float32(src[3 * p + 1])
        b = np.float32(src[3 * p + 2])
        dst[p] = (_LUMA_R * r + _LUMA_G * g) + _LUMA_B * b


@nb.njit(cache=True, nogil=True)
def luma_from_grey(grey, out):  # pragma: no cover - compiled
    rows, cols = out.shape
    for i in range(rows):
        for j in range(cols):
            out[i, j] = np.float32(grey[i, j])


_ROW_BLOCK = 8


@nb.njit(cache=True, nogil=True)
def _box_rows(src, dst, window):  # pragma: no cover - compiled
    """One 1-D box pass along every row (the reference's ``box1DFloat`` with stride 1).

    Rows are processed ``_ROW_BLOCK`` at a time, interleaved, so the running sums (a serial dependency within
    a row) of different rows overlap in the CPU pipeline; each row's arithmetic is unchanged.
    """
    rows, n = src.shape
    half = (window + 2) // 2
    p1 = half - 1
    p2 = window - half + 1
    p3 = n - window
    p4 = half - 1
    sums = np.zeros(_ROW_BLOCK, dtype=np.float32)
    for r0 in range(0, rows, _ROW_BLOCK):
        r1 = min(r0 + _ROW_BLOCK, rows)
        for r in range(r0, r1):
            sums[r - r0] = np.float32(0.0)
        cur = 0
        li = 0
        ri = 0
        oi = 0
        for _ in range(p1):
            for r in range(r0, r1):
                sums[r - r0] += src[r, ri]
            cur += 1
            ri += 1
        for _ in range(p2):
            cur += 1
            d = np.float32(cur)
            for r in range(r0, r1):
                sums[r - r0] += src[r, ri]
                dst[r, oi] = sums[r - r0] / d
            ri += 1
            oi += 1
        d = np.float32(cur)
        for _ in range(p3):
            for r in range(r0, r1):
                t = sums[r - r0] + src[r, ri]
                t -= src[r, li]
                sums[r - r0] = t
                dst[r, oi] = t / d
            li += 1
            ri += 1
            oi += 1
        for _ in range(p4):
            cur -= 1
            d = np.float32(cur)
            for r in range(r0, r1):
                sums[r - r0] -= src[r, li]
                dst[r, oi] = sums[r - r0] / d
            li += 1
            oi += 1


@nb.njit(cache=True, nogil=True)
def _box_cols(src, dst, window, sums):  # pragma: no cover - compiled
    """One 1-D box pass along every column, all columns at once (row-major friendly, same per-column
    arithmetic)."""
    n, cols = src.shape
    half = (window + 2) // 2
    p1 = half - 1
    p2 = window - half + 1
    p3 = n - window
    p4 = half - 1
    for c in range(cols):
        sums[c] = np.float32(0.0)
    cur = 0
    li = 0
    ri = 0
    oi = 0
    for _ in range(p1):
        for c in range(cols):
            sums[c] += src[ri, c]
        cur += 1
        ri += 1
    for _ in range(p2):
        cur += 1
        d = np.float32(cur)
        for c in range(cols):
            sums[c] += src[ri, c]
            dst[oi, c] = sums[c] / d
        ri += 1
        oi += 1
    d = np.float32(cur)
    for _ in range(p3):
        for c in range(cols):
            s = sums[c] + src[ri, c]
            s -= src[li, c]
            sums[c] = s
            dst[oi, c] = s / d
        li += 1
        ri += 1
        oi += 1
    for _ in range(p4):
        cur -= 1
        d = np.float32(cur)
        for c in range(cols):
            sums[c] -= src[li, c]
            dst[oi, c] = sums[c] / d
        li += 1
        oi += 1


@nb.njit(cache=True, nogil=True)
def jarosz_decimate(buf1, buf2, window_along_rows, window_along_cols, passes, out64):  # pragma: no cover
    """Tent-filter ``buf1`` in place (``passes`` × rows-then-columns box passes) and sample 64×64 cell
    centres."""
    rows, cols = buf1.shape
    sums = np.empty(cols, dtype=np.float32)
    for _ in range(passes):
        _box_rows(buf1, buf2, window_along_rows)
        _box_cols(buf2, buf1, window_along_cols, sums)
    for i in range(64):
        ini = int(((i + 0.5) * rows) / 64)
        for j in range(64):
            inj = int(((j + 0.5) * cols) / 64)
            out64[i, j] = buf1[ini, inj]


@nb.njit(cache=True, nogil=True)
def dct64_to_16(a, d, t, b):  # pragma: no cover - compiled
    """``b = d · a · dᵀ`` for the 16 lowest non-DC frequencies, sums accumulated term by term in float32."""
    for i in range(16):
        for j in range(64):
            s = np.float32(0.0)
            for k in range(64):
                s += d[i, k] * a[k, j]
            t[i, j] = s
    for i in range(16):
        for j in range(16):
            s = np.float32(0.0)
            for k in range(64):
                s += t[i, k] * d[j, k]
            b[i, j] = s


def dct_matrix() -> np.ndarray:
    """The 16×64 DCT-II rows 1..16, rounded to float32 exactly as the reference builds them."""
    scale = float(np.float32(math.sqrt(2.0 / 64.0)))
    m = np.empty((16, 64), dtype=np.float32)
    for i in range(16):
        for j in range(64):
            m[i, j] = np.float32(scale * math.cos((math.pi / 2.0 / 64.0) * (i + 1) * (2 * j + 1)))
    return m
