"""Video against image banks: a video's keyframes and scene changes, PDQ-hashed and looked up in the PDQ index.

HMA has left "match video frames against image banks" open since 2021; a known image re-filmed or pasted into a
video passes vPDQ (which compares videos with videos) and every file hash. Here each frame that
:class:`~safehold.signals.keyframes.KeyframeSampler` gives (keyframes and scene changes, bounded per minute,
streamed one at a time) is PDQ-hashed (the reference pipeline on the decoded pixels) and looked up in the
image banks' PDQ index, like an uploaded image. Frames below PDQ's quality floor (a black or flat frame) are not
looked up: they would match every other flat picture.

Only frames with a candidate are encoded (PNG) and held, at most ``keep`` of them, for the pipeline to keep in
the vault if the scan opens a case; the other frames are dropped as soon as they are hashed. Which candidates
are matches — bank enabled, a block bank, within that bank's PDQ threshold — the scan service decides
(:meth:`~safehold.scanning.service.ScanService._resolve_frames`), as for any other candidate.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image

from safehold.banks.index import BankIndex, Candidate
from safehold.errors import SafeholdError
from safehold.signals.base import Signal
from safehold.signals.frames import Frame
from safehold.signals.pdq import PdqSignal, hash_image

#: The signal type frames are hashed with and looked up under.
SIGNAL_TYPE = PdqSignal.name
#: Most frames of one video recorded as matching (each with its timestamp); more are counted, not listed.
MAX_HITS = 256


@dataclass
class FrameHit:
    """A frame with candidates in the PDQ index: when it is shown, its hash and, if kept, its PNG."""

    number: int
    timestamp: float
    pdq: str
    quality: int
    candidates: list[Candidate]
    png: bytes | None = field(default=None, repr=False)


@dataclass
class FrameScan:
    """What the frames of one video found: the frames with candidates, how many frames were hashed, and the
    refusal that stopped the frames part-way (``media.*``), if one did."""

    hits: list[FrameHit] = field(default_factory=list)
    hashed: int = 0
    error: SafeholdError | None = None


def has_image_hashes(index: BankIndex) -> bool:
    """Whether some bank holds PDQ hashes (else no frame can match and none is decoded)."""
    pdq = index.indexes.get(SIGNAL_TYPE)
    return pdq is not None and len(pdq) > 0 and index.query_threshold(SIGNAL_TYPE) >= 0


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def scan_frames(frames: Iterator[Frame], index: BankIndex, *, keep: int) -> FrameScan:
    """Hash and look up each of ``frames`` (consumed one at a time); the PNGs of at most ``keep`` frames with
    candidates are held. A refusal (429/503 aside: the server is busy, the caller retries) ends the frames and is
    returned in :attr:`FrameScan.error`; the frames before it still count."""
    out = FrameScan()
    try:
        for frame in frames:
            hex_, quality = hash_image(frame.image)
            out.hashed += 1
            if PdqSignal.unusable(Signal(SIGNAL_TYPE, hex_, quality=quality)):
                continue
            candidates = index.lookup(SIGNAL_TYPE, hex_)
            if not candidates or len(out.hits) >= MAX_HITS:
                continue
            held = sum(1 for h in out.hits if h.png is not None)
            hit = FrameHit(len(out.hits), frame.timestamp, hex_, quality, candidates)
            if held < keep:
                hit.png = png(frame.image)
            out.hits.append(hit)
    except SafeholdError as e:
        if e.status in (429, 503):
            raise
        out.error = e
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    return out
