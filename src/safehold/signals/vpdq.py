"""vPDQ: Meta's video hash (PDQ of one frame per second), hashing and matching.

**Value format** — identical to python-threatexchange's ``VPDQSignal`` (so Hasher-Matcher-Actioner's):
a JSON array of strings, one per hashed frame, each ``"<pdq hex>,<quality>,<timestamp>"``::

    ["f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,100,0.0", "…,98,1.0"]

``json.dumps`` default separators; the timestamp is written as Python's ``f"{t:.3}"`` (three significant
digits — the same, slightly lossy, spelling threatexchange uses, so one video hashed by Safehold and by HMA
gives byte-identical values). Timestamps do not take part in matching.

**Matching** (Meta's brute-force rule, :func:`safehold.matching.vpdq.vpdq_match`): drop repeated frame hashes
(first one kept), then drop frames with quality < 50; a query frame matches if some target frame is within
Hamming distance 31 (and vice versa). The result is the percentage of the query's frames that match and of the
target's frames that match; Meta's default decision is *query ≥ 80 % and target ≥ 0 %*
(:func:`~safehold.matching.vpdq.compare_frames`).

**Hashing** (:class:`VpdqHasher`) uses the ``vpdq`` package (libav inside). Input bytes go to a private
temporary file; the file is probed with ``ffprobe`` (when installed) for limits — size, duration, resolution —
and hashed in a *separate process* with a timeout, so a corrupt or hostile file can neither crash nor hang
the caller.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import ClassVar

from safehold.errors import SafeholdError
from safehold.matching.vpdq import (
    VPDQ_DISTANCE_THRESHOLD,
    checked_frame,
    compare_frames,
    is_meta_match,
    parse_vpdq,
    serialize_vpdq,
)
from safehold.signals.base import MIN_MATCH_CONFIDENCE, ContentHasher, Signal, SignalType
from safehold.signals.budget import WorkBudget
from safehold.signals.media import MAX_BYTES, check_size, sniff, sniff_format


class VpdqSignal(SignalType):
    """Meta's video PDQ; value in threatexchange's ``VPDQSignal`` format (see module docs)."""

    name: ClassVar[str] = "vpdq"
    description: ClassVar[str] = (
        "vPDQ video hash: JSON array of 'pdq_hex,quality,timestamp' (one frame per second), "
        "threatexchange/HMA compatible; matched by frame-match percentages"
    )
    matching: ClassVar[str] = "custom"
    #: Per-frame PDQ Hamming distance (bits) under which two frames match.
    default_threshold: ClassVar[int] = VPDQ_DISTANCE_THRESHOLD
    max_threshold: ClassVar[int] = 63
    perceptual_for: ClassVar[tuple[str, ...]] = ("video",)

    @classmethod
    def normalize(cls, value: str) -> str:
        return serialize_vpdq(parse_vpdq(value))

    @classmethod
    def index_cls(cls):
        from safehold.matching.vpdq_index import VpdqIndex

        return VpdqIndex

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """0 when Meta's rule calls the two videos a match, else 1 (vPDQ has no single distance)."""
        return 0 if compare_frames(a, b).is_match else 1

    @classmethod
    def is_match(cls, distance: int, threshold: int, detail: dict | None) -> bool:
        """Meta's rule at this bank's frame threshold (the index compared at the widest threshold of all banks)."""
        return bool(cls.bank_detail(threshold, detail).get("is_match"))

    @classmethod
    def bank_detail(cls, threshold: int, detail: dict | None) -> dict:
        """The frame-match percentages and Meta's decision at ``threshold``, recomputed from the index's counts
        of frames by nearest distance; a detail without counts (an older index) is taken as it is."""
        detail = detail or {}
        q_hist, t_hist = detail.get("query_hits_by_distance"), detail.get("target_hits_by_distance")
        if q_hist is None or t_hist is None:
            return dict(detail)
        q_pct = _share(q_hist, detail.get("query_frames", 0), threshold)
        t_pct = _share(t_hist, detail.get("target_frames", 0), threshold)
        return {
            "query_match_percent": round(q_pct, 2),
            "target_match_percent": round(t_pct, 2),
            "is_match": is_meta_match(q_pct, t_pct),
        }

    @classmethod
    def confidence(cls, distance: int, threshold: int, detail: dict | None) -> float:
        """The share of the uploaded video's frames that matched at the bank's threshold (never below 0.5: it is
        a match)."""
        share = cls.bank_detail(threshold, detail).get("query_match_percent", 100.0) / 100.0
        return max(MIN_MATCH_CONFIDENCE, min(1.0, share))


def _share(hits_by_distance: list[int], frames: int, threshold: int) -> float:
    """Percentage of ``frames`` whose nearest frame is within ``threshold`` (0 with no usable frame)."""
    return sum(hits_by_distance[: max(threshold, -1) + 1]) * 100.0 / frames if frames else 0.0


# ---------------------------------------------------------------------------------------------------- hashing

# Runs in a child process: only the ``vpdq`` package is imported there, and its result goes to a file so
# anything libav prints cannot corrupt it.
_WORKER = r"""
import json, sys
path, out = sys.argv[1], sys.argv[2]
sph, threads, mem = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
try:
    import vpdq
except ImportError as e:
    res = {"error": "missing", "message": str(e)}
else:
    if mem > 0:  # after the import, so the limit applies to decoding only
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    try:
        feats = vpdq.computeHash(path, seconds_per_hash=sph, thread_count=threads)
        res = {"frames": [[f.hex, int(f.quality), float(f.timestamp)] for f in feats]}
    except MemoryError:
        res = {"error": "memory", "message": "out of memory"}
    except Exception as e:
        res = {"error": "decode", "message": str(e)}
with open(out, "w") as fh:
    json.dump(res, fh)
"""

#: The file suffix a container format's private temporary copy is given (decoders guess from it too).
SUFFIX = {"mp4": ".mp4", "mov": ".mov", "webm": ".webm", "mkv": ".mkv", "avi": ".avi", "mpegts": ".ts",
        "flv": ".flv", "mpeg": ".mpg", "asf": ".wmv", "ogg": ".ogv"}  # fmt: skip


def private_copy(workdir: str, data: bytes) -> str:
    """Write ``data`` to a new file of the private ``workdir`` (mode 0600, never over an existing one), suffixed
    for its container format so decoders guess right; its path. Shared by vPDQ and frame sampling."""
    path = os.path.join(workdir, "input" + SUFFIX.get(sniff_format(data) or "", ".bin"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def too_slow(doing: str, timeout_seconds: float) -> SafeholdError:
    """413 ``media.too_large``: ``doing`` (``hashing the video``) took longer than its ``timeout_seconds``."""
    return SafeholdError(
        "media.too_large",
        f"{doing} took longer than {timeout_seconds:g} s",
        status=413,
        detail={"timeout_seconds": timeout_seconds},
    )


# Demuxers ffprobe reports for still images; a "video" made of one of these is an image, not a video.
_IMAGE_DEMUXERS = ("image2", "_pipe", "gif", "webp", "apng", "tiff", "bmp", "png", "jpeg", "heif", "avif")


def probe_video(
    path: str,
    *,
    recognised: bool,
    ffprobe_path: str | None,
    max_pixels: int,
    max_duration_seconds: float,
    timeout: float,
    deadline: float | None = None,
    timed_out: Callable[[], SafeholdError],
) -> float | None:
    """Check a video file's limits with ffprobe (a video stream, frame size, duration) before anything decodes
    it; return its duration if known. ``recognised``: its magic bytes said video (a probe failure is then
    ``media.corrupt``, else ``media.unsupported_format``). ``timed_out`` makes the error for a passed
    ``deadline``. No-op when ffprobe is not installed. Shared by every door that decodes video (vPDQ, frame
    sampling)."""
    if not ffprobe_path:
        return None
    cmd = [
        ffprobe_path,
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        path,
    ]
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise timed_out()
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        if deadline is not None and time.monotonic() >= deadline:
            raise timed_out() from None
        raise SafeholdError(
            "media.corrupt",
            "the video could not be read in time (probe timed out)",
            detail={"stage": "probe"},
        ) from None
    except OSError:
        return None  # ffprobe vanished or is not executable: fall back to hashing limits only
    info: dict = {}
    if proc.returncode == 0:
        try:
            info = json.loads(proc.stdout or b"{}")
        except ValueError:
            info = {}
    if proc.returncode != 0 or not info.get("format"):
        lines = proc.stderr.decode("utf-8", "replace").replace(path, "input").strip().splitlines()
        msg = (lines[-1] if lines else "unreadable")[:200]
        if recognised:
            raise SafeholdError("media.corrupt", f"the video is damaged: {msg}")
        raise SafeholdError("media.unsupported_format", "content is not a recognised video format")
    fmt_name = str(info.get("format", {}).get("format_name", ""))
    videos = [
        s
        for s in info.get("streams", [])
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]  # cover art in an audio file is not a video
    if not videos:
        raise SafeholdError("media.unsupported_format", "content has no video stream", detail={"format": fmt_name})
    if not recognised and any(d in fmt_name for d in _IMAGE_DEMUXERS):
        raise SafeholdError("media.unsupported_format", "content is an image, not a video")
    for s in videos:
        w, h = int(s.get("width") or 0), int(s.get("height") or 0)
        if w * h > max_pixels:
            raise SafeholdError(
                "media.too_large",
                f"video frames are {w}x{h}; the limit is {max_pixels} pixels",
                status=413,
                detail={"width": w, "height": h, "max_pixels": max_pixels},
            )
    duration = _probe_duration(info)
    if duration is not None and duration > max_duration_seconds:
        raise SafeholdError(
            "media.too_large",
            f"video is {duration:.0f} s long; the limit is {max_duration_seconds:.0f} s",
            status=413,
            detail={"duration": duration, "max_duration_seconds": max_duration_seconds},
        )
    return duration


def _probe_duration(info: dict) -> float | None:
    candidates = [info.get("format", {}).get("duration")]
    candidates += [s.get("duration") for s in info.get("streams", []) if s.get("codec_type") == "video"]
    best = None
    for c in candidates:
        try:
            v = float(c)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v) and v >= 0:
            best = v if best is None else max(best, v)
    return best


class VpdqHasher(ContentHasher):
    """vPDQ of a video, via the ``vpdq`` package, isolated in a child process with limits.

    :param seconds_per_hash: frame interval (Meta/HMA use 1.0; change it only if every party does).
    :param max_duration_seconds: longer videos raise ``media.too_large`` (ffprobe, then frame count).
    :param max_frames: most frames a hash may have (default: duration limit ÷ interval, +10 %).
    :param max_pixels: largest frame size (width × height) accepted.
    :param timeout_seconds: wall-clock limit for the whole hash, ffprobe included; the child is killed when it
        is reached (``media.too_large`` with ``detail.timeout_seconds``).
    :param max_bytes: largest input accepted (``media.too_large``).
    :param thread_count: libav/vpdq threads (0 = vpdq chooses). Results do not depend on it.
    :param memory_limit_bytes: optional address-space limit for the child (``RLIMIT_AS``).
    :param isolate: ``False`` hashes in this process (faster, but no timeout or crash isolation).
    :param tmp_dir: where the private temporary copy is written (e.g. an encrypted tmpfs).
    :param slots: a process-wide :class:`~safehold.signals.budget.WorkBudget` of video hashes; one slot is held
        from probe to result, and a hash that cannot get one in time is refused with ``media.busy`` (503).
    """

    media: ClassVar[str] = "video"
    signal_types: ClassVar[tuple[str, ...]] = ("vpdq",)

    def __init__(
        self,
        *,
        seconds_per_hash: float = 1.0,
        max_duration_seconds: float = 3 * 3600,
        max_frames: int | None = None,
        max_pixels: int = 8192 * 8192,
        timeout_seconds: float = 600.0,
        probe_timeout_seconds: float = 30.0,
        max_bytes: int = MAX_BYTES,
        thread_count: int = 1,
        memory_limit_bytes: int | None = None,
        isolate: bool = True,
        tmp_dir: str | None = None,
        ffprobe_path: str | None = None,
        slots: WorkBudget | None = None,
    ):
        if seconds_per_hash <= 0:
            raise ValueError("seconds_per_hash must be > 0")
        self.seconds_per_hash = float(seconds_per_hash)
        self.max_duration_seconds = float(max_duration_seconds)
        self.max_frames = (
            max_frames if max_frames is not None else int(max_duration_seconds / seconds_per_hash * 1.1) + 2
        )
        self.max_pixels = int(max_pixels)
        self.timeout_seconds = float(timeout_seconds)
        self.probe_timeout_seconds = float(probe_timeout_seconds)
        self.max_bytes = int(max_bytes)
        self.thread_count = int(thread_count)
        self.memory_limit_bytes = memory_limit_bytes
        self.isolate = isolate
        self.tmp_dir = tmp_dir
        self.ffprobe_path = ffprobe_path if ffprobe_path is not None else shutil.which("ffprobe")
        self.slots = slots

    # -- public ------------------------------------------------------------------------------------------
    def hash_bytes(self, data: bytes) -> list[Signal]:
        check_size(data, self.max_bytes)
        if not data:
            raise SafeholdError("media.unsupported_format", "empty content is not a video")
        kind = sniff(data)
        if kind == "image":
            raise SafeholdError(
                "media.unsupported_format",
                "content is an image, not a video",
                detail={"format": sniff_format(data)},
            )
        workdir = tempfile.mkdtemp(prefix="safehold-vpdq-", dir=self.tmp_dir)  # mode 0700
        try:
            return self._hash_path(private_copy(workdir, data), workdir, recognised=kind == "video")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def hash_file(self, path: str | os.PathLike[str]) -> list[Signal]:
        """Hash a video already on disk (same limits; no copy is made)."""
        p = os.fspath(path)
        try:
            size = os.path.getsize(p)
            with open(p, "rb") as f:
                head = f.read(4096)
        except OSError as e:
            raise SafeholdError("media.unreadable", f"cannot read {p!r}: {e.strerror or e}") from e
        check_size(size, self.max_bytes)
        kind = sniff(head)
        if kind == "image":
            raise SafeholdError("media.unsupported_format", "content is an image, not a video")
        workdir = tempfile.mkdtemp(prefix="safehold-vpdq-", dir=self.tmp_dir)
        try:
            return self._hash_path(p, workdir, recognised=kind == "video")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------------------------
    def _timed_out(self) -> SafeholdError:
        return too_slow("hashing the video", self.timeout_seconds)

    def _probe(self, path: str, recognised: bool, deadline: float | None = None) -> float | None:
        """Check limits with ffprobe; return the duration if known. No-op when ffprobe is not installed."""
        return probe_video(
            path,
            recognised=recognised,
            ffprobe_path=self.ffprobe_path,
            max_pixels=self.max_pixels,
            max_duration_seconds=self.max_duration_seconds,
            timeout=self.probe_timeout_seconds,
            deadline=deadline,
            timed_out=self._timed_out,
        )

    def _hash_path(self, path: str, workdir: str, *, recognised: bool) -> list[Signal]:
        if self.slots is None:
            return self._hash_path_now(path, workdir, recognised=recognised)
        with self.slots.hold(1):
            return self._hash_path_now(path, workdir, recognised=recognised)

    def _hash_path_now(self, path: str, workdir: str, *, recognised: bool) -> list[Signal]:
        deadline = time.monotonic() + self.timeout_seconds
        duration = self._probe(path, recognised, deadline)
        raw = self._run_isolated(path, workdir, deadline) if self.isolate else self._run_inline(path)
        if not raw:
            raise SafeholdError("media.corrupt", "no video frames could be decoded")
        if len(raw) > self.max_frames:
            raise SafeholdError(
                "media.too_large",
                f"video gives {len(raw)} frames; the limit is {self.max_frames}",
                status=413,
                detail={"frames": len(raw), "max_frames": self.max_frames},
            )
        try:
            frames = [checked_frame(h, q, t, i) for i, (h, q, t) in enumerate(raw)]
        except SafeholdError as e:
            raise SafeholdError("media.corrupt", "the video hasher returned malformed frames") from e
        value = serialize_vpdq(frames)
        quality = round(sum(f.quality for f in frames) / len(frames))
        extra = {"frames": len(frames), "seconds_per_hash": self.seconds_per_hash}
        if duration is not None:
            extra["duration"] = duration
        return [Signal(type="vpdq", value=value, quality=quality, extra=extra)]

    def _run_inline(self, path: str) -> list:
        try:
            import vpdq
        except ImportError as e:  # pragma: no cover - dependency of safehold
            raise SafeholdError("signal.unavailable", "the 'vpdq' package is not installed", status=500) from e
        try:
            feats = vpdq.computeHash(path, seconds_per_hash=self.seconds_per_hash, thread_count=self.thread_count)
        except Exception as e:  # noqa: BLE001 - vpdq raises bare Exception for undecodable input
            raise SafeholdError("media.corrupt", f"the video could not be decoded: {e}") from None
        return [[f.hex, int(f.quality), float(f.timestamp)] for f in feats]

    def _run_isolated(self, path: str, workdir: str, deadline: float | None = None) -> list:
        out = os.path.join(workdir, "result.json")
        cmd = [
            sys.executable, "-c", _WORKER, path, out,
            repr(self.seconds_per_hash), str(self.thread_count),
            str(int(self.memory_limit_bytes or 0)),
        ]  # fmt: skip
        timeout = self.timeout_seconds if deadline is None else deadline - time.monotonic()
        if timeout <= 0:
            raise self._timed_out()
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False,
                cwd=workdir,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise self._timed_out() from None
        try:
            with open(out, encoding="utf-8") as fh:
                res = json.load(fh)
        except (OSError, ValueError):
            res = None
        if res is None:
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            raise SafeholdError(
                "media.corrupt", f"the video decoder failed ({how})", detail={"returncode": proc.returncode}
            )
        err = res.get("error")
        if err == "missing":
            raise SafeholdError("signal.unavailable", "the 'vpdq' package is not installed", status=500)
        if err == "memory":
            raise SafeholdError("media.too_large", "decoding the video needs more memory than allowed", status=413)
        if err:
            raise SafeholdError("media.corrupt", f"the video could not be decoded: {res.get('message', '')[:200]}")
        frames = res.get("frames")
        if not isinstance(frames, list):
            raise SafeholdError("media.corrupt", "the video hasher returned no result")
        return frames
