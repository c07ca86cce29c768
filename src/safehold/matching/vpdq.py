"""vPDQ values and Meta's match rule: parsing and writing the threatexchange/HMA text form, and comparing two
videos by the share of their frames that match.

Pure functions (no hashing, no storage): the vPDQ signal type (:mod:`safehold.signals.vpdq`) and the vPDQ index
(:mod:`safehold.matching.vpdq_index`) both use them.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from safehold.errors import SafeholdError

#: Meta's defaults (python-threatexchange ``vpdq_util``).
VPDQ_DISTANCE_THRESHOLD = 31
VPDQ_QUALITY_THRESHOLD = 50
VPDQ_QUERY_MATCH_PERCENT = 80.0
VPDQ_TARGET_MATCH_PERCENT = 0.0
VPDQ_TIMESTAMP_PRECISION = 3

#: Largest number of frames accepted in one serialised value (≈ 55 hours at one frame per second).
MAX_FRAMES_IN_VALUE = 200_000

_HEX = frozenset(string.hexdigits)


class VpdqFrame(NamedTuple):
    """One hashed frame: PDQ hash (64 lower-case hex), PDQ quality 0–100, timestamp in seconds."""

    pdq_hex: str
    quality: int
    timestamp: float


def _bad(message: str, **detail) -> SafeholdError:
    return SafeholdError("signal.invalid_value", f"invalid vpdq value: {message}", detail={"type": "vpdq", **detail})


def _frame_from_str(item: object, index: int) -> VpdqFrame:
    if not isinstance(item, str):
        raise _bad(f"frame {index} is not a string", frame=index)
    parts = item.split(",")
    if len(parts) != 3:
        raise _bad(f"frame {index} must be 'pdq_hex,quality,timestamp'", frame=index)
    return checked_frame(parts[0], parts[1], parts[2], index)


def checked_frame(pdq_hex: object, quality: object, timestamp: object, index: int) -> VpdqFrame:
    h = pdq_hex.strip().lower() if isinstance(pdq_hex, str) else ""
    if len(h) != 64 or not all(c in _HEX for c in h):
        raise _bad(f"frame {index} PDQ hash must be 64 hex digits", frame=index)
    try:
        q = int(quality.strip()) if isinstance(quality, str) else quality
        ts = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _bad(f"frame {index} quality/timestamp are not numbers", frame=index) from None
    if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q <= 100:
        raise _bad(f"frame {index} quality must be an integer 0-100", frame=index)
    if not math.isfinite(ts) or ts < 0:
        raise _bad(f"frame {index} timestamp must be a non-negative number", frame=index)
    return VpdqFrame(h, q, ts)


def parse_vpdq(value: str) -> list[VpdqFrame]:
    """Parse a vPDQ value (threatexchange/HMA format) into frames; raise ``signal.invalid_value``.

    Also accepts the older threatexchange form ``{"<frame>": {"quality": …, "hash": …, "timestamp": …}}``.
    """
    if not isinstance(value, str):
        raise _bad("value must be a JSON string")
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        raise _bad("not JSON") from None
    if isinstance(data, dict):
        try:
            items = sorted(data.items(), key=lambda kv: int(kv[0]))
            frames = [checked_frame(f["hash"], f["quality"], f["timestamp"], i) for i, (_, f) in enumerate(items)]
        except (KeyError, TypeError, ValueError):
            raise _bad("old-style object must map frame numbers to {quality, hash, timestamp}") from None
    elif isinstance(data, list):
        frames = [_frame_from_str(item, i) for i, item in enumerate(data)]
    else:
        raise _bad("must be a JSON array of 'pdq_hex,quality,timestamp' strings")
    if not frames:
        raise _bad("no frames")
    if len(frames) > MAX_FRAMES_IN_VALUE:
        raise _bad(f"more than {MAX_FRAMES_IN_VALUE} frames", frames=len(frames))
    return frames


def _ts_text(ts: float) -> str:
    return f"{ts:.{VPDQ_TIMESTAMP_PRECISION}}"


def serialize_vpdq(frames: Iterable[VpdqFrame | tuple[str, int, float]]) -> str:
    """The canonical text of ``frames`` — byte-identical to threatexchange's ``vpdq_to_json``."""
    out = []
    for i, f in enumerate(frames):
        fr = checked_frame(f[0], f[1], f[2], i)
        out.append(f"{fr.pdq_hex},{fr.quality},{_ts_text(fr.timestamp)}")
    return json.dumps(out)


# --------------------------------------------------------------------------------------------------- matching


def _prepare(frames: str | Sequence[VpdqFrame], quality_threshold: int) -> np.ndarray:
    """Dedupe (first kept) then quality-filter, as Meta's brute matcher does → (n, 256) float32 bits."""
    if isinstance(frames, str):
        frames = parse_vpdq(frames)
    seen: set[str] = set()
    keep: list[str] = []
    for f in frames:
        h = f[0].lower()
        if h in seen:
            continue
        seen.add(h)
        if f[1] >= quality_threshold:
            keep.append(h)
    if not keep:
        return np.zeros((0, 256), dtype=np.float32)
    raw = np.frombuffer(bytes.fromhex("".join(keep)), dtype=np.uint8).reshape(len(keep), 32)
    return np.unpackbits(raw, axis=1).astype(np.float32)


def nearest_distances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a`` the Hamming distance to its nearest row of ``b``, and vice versa (257 when the
    other side is empty), so one comparison answers every frame threshold.

    Hamming distance of bit vectors = |a| + |b| − 2·a·b, computed blockwise with a matrix product (exact in
    float32: every term is an integer ≤ 256), so memory stays bounded for long videos.
    """
    a_min = np.full(len(a), 257, dtype=np.int16)
    b_min = np.full(len(b), 257, dtype=np.int16)
    if len(a) == 0 or len(b) == 0:
        return a_min, b_min
    pa = a.sum(axis=1)
    pb = b.sum(axis=1)
    rows = max(1, 4_000_000 // len(b))
    for start in range(0, len(a), rows):
        block = a[start : start + rows]
        dist = np.rint(pa[start : start + rows, None] + pb[None, :] - 2.0 * (block @ b.T)).astype(np.int16)
        a_min[start : start + rows] = dist.min(axis=1)
        np.minimum(b_min, dist.min(axis=0), out=b_min)
    return a_min, b_min


def prepared_distances(
    query_frames: str | Sequence[VpdqFrame],
    target_frames: str | Sequence[VpdqFrame],
    *,
    quality_threshold: int = VPDQ_QUALITY_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_distances` of two videos after Meta's dedupe and quality filter."""
    return nearest_distances(_prepare(query_frames, quality_threshold), _prepare(target_frames, quality_threshold))


def match_percents(query_nearest: np.ndarray, target_nearest: np.ndarray, threshold: int) -> tuple[float, float]:
    """The share (in %) of each side's frames whose nearest frame on the other side is within ``threshold``."""
    q = float((query_nearest <= threshold).sum()) * 100.0 / len(query_nearest) if len(query_nearest) else 0.0
    t = float((target_nearest <= threshold).sum()) * 100.0 / len(target_nearest) if len(target_nearest) else 0.0
    return q, t


def is_meta_match(
    query_percent: float,
    target_percent: float,
    *,
    query_match_percent: float = VPDQ_QUERY_MATCH_PERCENT,
    target_match_percent: float = VPDQ_TARGET_MATCH_PERCENT,
) -> bool:
    """Meta's decision: both percentages reach their thresholds and at least one query frame matched."""
    return query_percent > 0 and query_percent >= query_match_percent and target_percent >= target_match_percent


def vpdq_match(
    query_frames: str | Sequence[VpdqFrame],
    target_frames: str | Sequence[VpdqFrame],
    *,
    distance_threshold: int = VPDQ_DISTANCE_THRESHOLD,
    quality_threshold: int = VPDQ_QUALITY_THRESHOLD,
) -> tuple[float, float]:
    """``(query_match_percent, target_match_percent)`` under Meta's vPDQ rule.

    Frames (or serialised values) are deduplicated by hash, frames below ``quality_threshold`` dropped; a
    frame matches if any frame of the other video is within ``distance_threshold`` bits. A side with no
    usable frame scores 0 % (Meta's code divides by zero there).
    """
    q_near, t_near = prepared_distances(query_frames, target_frames, quality_threshold=quality_threshold)
    return match_percents(q_near, t_near, distance_threshold)


@dataclass(frozen=True)
class VpdqComparison:
    query_match_percent: float
    target_match_percent: float
    is_match: bool


def compare_frames(
    query_frames: str | Sequence[VpdqFrame],
    target_frames: str | Sequence[VpdqFrame],
    *,
    query_match_percent: float = VPDQ_QUERY_MATCH_PERCENT,
    target_match_percent: float = VPDQ_TARGET_MATCH_PERCENT,
    distance_threshold: int = VPDQ_DISTANCE_THRESHOLD,
    quality_threshold: int = VPDQ_QUALITY_THRESHOLD,
) -> VpdqComparison:
    """Both percentages of :func:`vpdq_match` and Meta's decision: a match when both reach their thresholds
    (default 80 % / 0 %) and at least one query frame matched."""
    q, t = vpdq_match(
        query_frames,
        target_frames,
        distance_threshold=distance_threshold,
        quality_threshold=quality_threshold,
    )
    match = is_meta_match(q, t, query_match_percent=query_match_percent, target_match_percent=target_match_percent)
    return VpdqComparison(q, t, match)


def vpdq_is_match(query_frames: str | Sequence[VpdqFrame], target_frames: str | Sequence[VpdqFrame], **kw) -> bool:
    """True when :func:`compare_frames` calls it a match (same keyword arguments)."""
    return compare_frames(query_frames, target_frames, **kw).is_match
