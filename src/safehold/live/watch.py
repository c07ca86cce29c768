"""The streams under watch and what happens to one frame of them, before anything is decoded and after.

:class:`Watch` holds each registered stream's state in memory — its source, broadcaster and viewers, its risk
and sampler, its ring buffer and the last few sampled frames for the console — and bounds how many streams it
holds. :meth:`Watch.offer` is a frame's way in: a frame the stream's current rate does not want is answered
``skipped`` after one comparison; a wanted one must be a JPEG or PNG within the size bound (the magic bytes are
read, nothing is decoded) and is handed, with the stream, to the caller's ``judge`` — the hash-and-match step
(:class:`IndexJudge` against a bare index here; the banks through the scan service in the pipeline), which
decodes within the image bounds of :mod:`safehold.signals.image`.

The state is per process, like the matching index: streams live as long as the process that watches them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.live.buffer import BufferPool, Frame, RingBuffer
from safehold.live.sampling import REASONS, Rates, Risk, Sampler
from safehold.matching.protocol import SignalIndex
from safehold.signals import pdq

SOURCES = ("push", "url")
#: The longest stream id: its case's content id, ``live:<id>``, is at most 128 characters.
MAX_STREAM_ID = 120
#: Sampled frames of a stream's ring buffer the console's timeline shows.
RECENT = 6


@dataclass(frozen=True)
class Verdict:
    """What the judge found about one sampled frame: ``match`` (known material), ``no_match``, ``unhashable``
    (too flat or failed to decode); its PDQ hash and, opaque to this library, what the judge wants to keep."""

    verdict: str
    pdq: str | None = None
    quality: int | None = None
    detail: Any = None
    #: A classifier score on the frame (``None``: none ran), which raises the stream's risk.
    score: float | None = None


@dataclass
class Stream:
    id: str
    broadcaster: str
    source: str
    url: str | None
    buffer: RingBuffer
    #: Who registered the stream (an API key's label), whose streams :attr:`Watch.max_per_owner` bounds.
    owner: str | None = None
    viewers: list[str] = field(default_factory=list)
    chat: str | None = None
    risk: Risk = field(default_factory=Risk)
    sampler: Sampler = field(default_factory=Sampler)
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    status: str = "watching"  # watching | interrupted | ended
    received: int = 0
    sampled: int = 0
    matches: int = 0
    case_id: int | None = None
    #: Guards the sampler, the counters and the ring buffer (never held while a frame is judged).
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_dict(self, rates: Rates, high_score: float) -> dict:
        level = self.risk.level(high_score)
        return {
            "id": self.id,
            "broadcaster": self.broadcaster,
            "viewers": list(self.viewers),
            "source": self.source,
            "url": self.url,
            "chat_conversation": self.chat,
            "status": self.status,
            "risk": self.risk.to_dict(high_score),
            "rate": rates.at(level),
            "frames": {"received": self.received, "sampled": self.sampled, "matched": self.matches},
            "buffered": {"frames": len(self.buffer), "bytes": self.buffer.bytes},
            "case_id": self.case_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


@dataclass(frozen=True)
class Offered:
    """The answer to one offered frame: ``sampled`` (judged: ``verdict`` says what it found) or ``skipped``."""

    stream: Stream
    sampled: bool
    verdict: Verdict | None = None
    frame: Frame | None = None


def image_kind(data: bytes) -> str | None:
    """``jpeg`` or ``png`` from the magic bytes (nothing decoded), else ``None``."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


class Watch:
    def __init__(
        self,
        *,
        rates: Rates | None = None,
        max_streams: int = 1000,
        max_per_owner: int | None = None,
        max_frame_bytes: int = 2 << 20,
        buffer_seconds: float = 30.0,
        buffer_bytes: int = 8 << 20,
        max_buffer_bytes: int = 512 << 20,
        high_score: float = 0.8,
        keep_ended: int = 100,
    ):
        self.rates = rates or Rates()
        self.max_streams, self.max_frame_bytes = max_streams, max_frame_bytes
        #: Streams one owner may have under watch at once (``None``: only :attr:`max_streams`), so that one key —
        #: leaked, or a platform's runaway loop — cannot take every stream this process watches.
        self.max_per_owner = max_per_owner
        self.buffer_seconds, self.buffer_bytes = buffer_seconds, buffer_bytes
        #: Every stream's ring buffer together: ``max_streams`` × ``buffer_bytes`` would be gigabytes.
        self.pool = BufferPool(max_buffer_bytes)
        self.high_score = high_score
        self.keep_ended = keep_ended
        self._streams: dict[str, Stream] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ streams

    def register(
        self,
        stream_id: str,
        broadcaster: str,
        *,
        source: str = "push",
        url: str | None = None,
        viewers: list[str] | None = None,
        chat: str | None = None,
        owner: str | None = None,
    ) -> Stream:
        if not 0 < len(stream_id) <= MAX_STREAM_ID:
            raise SafeholdError("live.invalid_id", f"A stream id is 1 to {MAX_STREAM_ID} characters.")
        if source not in SOURCES:
            raise SafeholdError("live.invalid_source", f"source must be one of {', '.join(SOURCES)}.")
        if (source == "url") != (url is not None):
            raise SafeholdError("live.invalid_source", "A 'url' stream needs its url; a 'push' stream takes none.")
        with self._lock:
            old = self._streams.get(stream_id)
            if old is not None and old.status != "ended":
                raise Conflict("live.stream_exists", f"Stream {stream_id!r} is already under watch.")
            watching = sum(1 for s in self._streams.values() if s.status != "ended")
            if watching >= self.max_streams:
                raise SafeholdError(
                    "live.too_many_streams",
                    f"{watching} streams are under watch, the most this server takes (live_max_streams).",
                    status=503,
                    headers={"Retry-After": "10"},
                )
            if owner is not None and self.max_per_owner is not None:
                own = sum(1 for s in self._streams.values() if s.status != "ended" and s.owner == owner)
                if own >= self.max_per_owner:
                    raise SafeholdError(
                        "live.too_many_streams_for_key",
                        f"{own} streams of this key are under watch, the most one key may have "
                        "(live_max_streams_per_key); end one first.",
                        status=429,
                        detail={"limit": self.max_per_owner},
                    )
            stream = Stream(
                id=stream_id,
                broadcaster=broadcaster,
                source=source,
                url=url,
                viewers=list(dict.fromkeys(viewers or [])),
                chat=chat,
                buffer=RingBuffer(self.buffer_seconds, self.buffer_bytes, self.pool),
                owner=owner,
            )
            self._streams[stream_id] = stream
            self._forget_ended()
            return stream

    def get(self, stream_id: str) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise NotFound("live.stream_not_found", f"No stream {stream_id!r} under watch.")
        return stream

    def streams(self, *, ended: bool = False) -> list[Stream]:
        with self._lock:
            out = [s for s in self._streams.values() if ended or s.status != "ended"]
        levels = {"high": 0, "elevated": 1, "baseline": 2}
        return sorted(out, key=lambda s: (s.status == "ended", levels[s.risk.level(self.high_score)], s.id))

    def end(self, stream_id: str) -> Stream:
        return self.close(self.get(stream_id))

    def close(self, stream: Stream) -> Stream:
        """End this stream (not whichever has its id now: a pulled stream's reader ends it after the platform may
        have registered the id again)."""
        with stream.lock:
            if stream.status != "ended":
                stream.status, stream.ended_at = "ended", time.time()
                stream.buffer.clear()  # media is not kept unless it matched (then it is preserved already)
        return stream

    def _forget_ended(self) -> None:
        ended = [s for s in self._streams.values() if s.status == "ended"]
        for s in sorted(ended, key=lambda s: s.ended_at or 0)[: max(0, len(ended) - self.keep_ended)]:
            del self._streams[s.id]

    # -------------------------------------------------------------- risk

    def raise_risk(self, stream_id: str, reason: str, score: float | None = None) -> Stream:
        if reason not in REASONS:
            raise SafeholdError("live.invalid_signal", f"reason must be one of {', '.join(REASONS)}.")
        stream = self.get(stream_id)
        stream.risk.add(reason, score)
        return stream

    def rate(self, stream: Stream) -> float:
        return self.rates.at(stream.risk.level(self.high_score))

    # ------------------------------------------------------------- frames

    def offer(self, stream_id: str, data: bytes, ts: float, judge: Callable[[Stream, bytes], Verdict]) -> Offered:
        """One frame captured at ``ts`` (seconds since the epoch): skipped when the stream's rate does not want
        it (:meth:`admit`), otherwise checked, judged and kept (:meth:`judge`)."""
        stream, sampled = self.admit(stream_id, ts)
        return self.judge(stream, data, ts, judge) if sampled else Offered(stream, False)

    def admit(self, stream_id: str, ts: float) -> tuple[Stream, bool]:
        """Whether the stream's current rate wants a frame captured at ``ts``: a comparison under the stream's
        lock, held for no longer, so a server may ask it on its event loop and hand only sampled frames on."""
        stream = self.get(stream_id)
        if stream.status == "ended":
            raise Conflict("live.stream_ended", f"Stream {stream_id!r} has ended.")
        with stream.lock:
            stream.received += 1
            return stream, stream.sampler.take(ts, self.rate(stream))

    def judge(self, stream: Stream, data: bytes, ts: float, judge: Callable[[Stream, bytes], Verdict]) -> Offered:
        """A sampled frame: checked (size; JPEG or PNG by its magic bytes), judged, kept in the ring buffer. Two
        sampled frames of one stream may be judged at once (they are seconds apart); the buffer is locked."""
        kind = image_kind(data)
        if len(data) > self.max_frame_bytes or kind is None:
            with stream.lock:
                stream.sampler.release(ts)  # refused before any look: the next frame takes its slot
            if kind is None:
                raise SafeholdError("live.frame_format", "A frame is a JPEG or PNG image.", status=415)
            raise SafeholdError(
                "live.frame_too_large",
                f"A frame is at most {self.max_frame_bytes} bytes (live_max_frame_bytes).",
                status=413,
            )
        verdict = judge(stream, data)
        frame = Frame(ts, data, kind, verdict.pdq, verdict.verdict)
        with stream.lock:
            stream.sampled += 1
            if verdict.score is not None and verdict.score >= self.high_score:
                stream.risk.add("classifier_score", verdict.score)
            if stream.status != "ended" and not any(f.ts == ts for f in stream.buffer.frames(last=2)):
                stream.buffer.add(frame)  # (the judge adds a matching frame itself, before sealing the buffer)
            if verdict.verdict == "match":
                stream.matches += 1
        return Offered(stream, True, verdict, frame)


class IndexJudge:
    """Hash a frame (PDQ, within ``max_pixels``) and look it up in a bare :class:`SignalIndex` of PDQ hashes: a
    hit within ``threshold`` bits is a ``match``. For a detector used alone (bench/live.py, tests); the server
    judges through its banks instead, whose own settings decide (safehold.pipeline.live)."""

    def __init__(self, index: SignalIndex, threshold: int = 31, *, max_pixels: int = 50_000_000, min_quality=50):
        self.index, self.threshold, self.max_pixels, self.min_quality = index, threshold, max_pixels, min_quality

    def __call__(self, stream: Stream, data: bytes) -> Verdict:
        try:
            value, quality = pdq.hash_image(data, max_pixels=self.max_pixels)
        except SafeholdError as e:
            return Verdict("unhashable", detail={"error": e.code})
        if quality < self.min_quality:
            return Verdict("unhashable", value, quality)
        hits = self.index.query(value, self.threshold)
        return Verdict("match" if hits else "no_match", value, quality, detail=hits or None)
