"""The last seconds of a stream's sampled frames, in memory, within a byte bound.

When a stream alerts, what led up to the alert is evidence: the ring buffer holds the sampled frames of the last
``seconds`` (by capture time) and never more than ``max_bytes``; the oldest frames go first. Nothing here is
written anywhere: the pipeline seals the frames into the evidence store on an alert
(:meth:`RingBuffer.clip`), and an ended stream's buffer is dropped.
"""

from __future__ import annotations

import io
import json
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


class RingBuffer:
    def __init__(self, seconds: float, max_bytes: int):
        self.seconds, self.max_bytes = seconds, max_bytes
        self._frames: deque[Frame] = deque()
        self.bytes = 0

    def add(self, frame: Frame) -> None:
        if len(frame.data) > self.max_bytes:
            return  # one frame larger than the whole buffer: keeping it would evict everything else
        self._frames.append(frame)
        self.bytes += len(frame.data)
        while self._frames and (self.bytes > self.max_bytes or frame.ts - self._frames[0].ts > self.seconds):
            self.bytes -= len(self._frames.popleft().data)

    def frames(self, last: int | None = None) -> list[Frame]:
        frames = list(self._frames)
        return frames if last is None else frames[-last:]

    @property
    def newest(self) -> Frame | None:
        return self._frames[-1] if self._frames else None

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        self._frames.clear()
        self.bytes = 0

    def clip(self, meta: dict) -> bytes:
        """The buffered frames as one ZIP (stored, not compressed: JPEG and PNG are compressed already), with a
        ``manifest.json`` naming each frame's capture time, PDQ hash and verdict, and ``meta`` (the stream)."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
            manifest = []
            for i, f in enumerate(self._frames):
                name = f"frame-{i:04d}-{f.ts:.3f}.{'jpg' if f.kind == 'jpeg' else 'png'}"
                z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), f.data)
                manifest.append({"file": name, "captured_at": f.ts, "pdq": f.pdq, "verdict": f.verdict})
            info = zipfile.ZipInfo("manifest.json", date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, json.dumps({**meta, "frames": manifest}, indent=1, sort_keys=True))
        return out.getvalue()
