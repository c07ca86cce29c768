"""The last seconds of a stream's sampled frames, in memory, within a byte bound.

When a stream alerts, what led up to the alert is evidence: the ring buffer holds the sampled frames of the last
``seconds`` (by capture time) and never more than ``max_bytes``; the oldest frames go first. Nothing here is
written anywhere: the pipeline seals the frames into the evidence store on an alert
(:meth:`RingBuffer.clip`), and an ended stream's buffer is dropped.

One stream's bound is not a process's: a thousand streams of 8 MiB each would be 8 GiB. A :class:`BufferPool`
bounds the bytes of every buffer that shares it; when a frame takes the pool over its bound, the oldest frames of
the buffers holding the most go first, one frame at a time, until it fits — so every stream keeps its newest
seconds (what an alert preserves) and the small buffers are the last touched. Registration is never refused for
memory: watching a stream matters more than the length of its clip.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    ts: float
    data: bytes
    kind: str  # "jpeg" or "png"
    pdq: str | None = None
    verdict: str | None = None


class BufferPool:
    """The bytes held by every ring buffer that shares this pool, at most ``max_bytes`` together.

    One lock guards every buffer of the pool (a frame's append or eviction is a few deque operations), so that a
    frame of one stream may evict the frames of another without two locks ever being taken in turn."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        #: Frames evicted for the pool's bound (not for their own buffer's), since the start.
        self.shed = 0
        self.lock = threading.Lock()
        self._holding: set[RingBuffer] = set()  # the buffers with at least one frame

    def _fit(self) -> None:
        while self.bytes > self.max_bytes and self._holding:
            fullest = max(self._holding, key=lambda b: b.bytes)
            fullest._drop_oldest()
            self.shed += 1

    def to_dict(self) -> dict:
        with self.lock:
            return {"bytes": self.bytes, "max_bytes": self.max_bytes, "buffers": len(self._holding), "shed": self.shed}


class RingBuffer:
    def __init__(self, seconds: float, max_bytes: int, pool: BufferPool | None = None):
        self.seconds, self.max_bytes = seconds, max_bytes
        self.pool = pool or BufferPool(max_bytes)
        self._frames: deque[Frame] = deque()
        self.bytes = 0

    def add(self, frame: Frame) -> None:
        if len(frame.data) > min(self.max_bytes, self.pool.max_bytes):
            return  # one frame larger than the whole buffer: keeping it would evict everything else
        with self.pool.lock:
            self._frames.append(frame)
            self.bytes += len(frame.data)
            self.pool.bytes += len(frame.data)
            self.pool._holding.add(self)
            while self._frames and (self.bytes > self.max_bytes or frame.ts - self._frames[0].ts > self.seconds):
                self._drop_oldest()
            self.pool._fit()

    def _drop_oldest(self) -> None:
        """(Under the pool's lock.)"""
        n = len(self._frames.popleft().data)
        self.bytes -= n
        self.pool.bytes -= n
        if not self._frames:
            self.pool._holding.discard(self)

    def frames(self, last: int | None = None) -> list[Frame]:
        with self.pool.lock:
            frames = list(self._frames)
        return frames if last is None else frames[-last:]

    @property
    def newest(self) -> Frame | None:
        return self._frames[-1] if self._frames else None

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        with self.pool.lock:
            self._frames.clear()
            self.pool.bytes -= self.bytes
            self.bytes = 0
            self.pool._holding.discard(self)

    def clip(self, meta: dict) -> bytes:
        """The buffered frames as one ZIP (stored, not compressed: JPEG and PNG are compressed already), with a
        ``manifest.json`` naming each frame's capture time, PDQ hash and verdict, and ``meta`` (the stream)."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
            manifest = []
            for i, f in enumerate(self.frames()):
                name = f"frame-{i:04d}-{f.ts:.3f}.{'jpg' if f.kind == 'jpeg' else 'png'}"
                z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), f.data)
                manifest.append({"file": name, "captured_at": f.ts, "pdq": f.pdq, "verdict": f.verdict})
            info = zipfile.ZipInfo("manifest.json", date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, json.dumps({**meta, "frames": manifest}, indent=1, sort_keys=True))
        return out.getvalue()
