"""Sampled frames of a video, for detectors that look at pictures (classifiers): few, evenly spread, bounded.

:class:`FrameSampler` takes at most ``count`` frames (and at most one a second) at evenly spread times — the
middle of each of ``count`` equal parts of the video, so neither the black first frame nor the credits decide —
and gives them one at a time, each with its timestamp. The bounds are the video hash's (:mod:`safehold.signals.vpdq`):
the bytes go to a private temporary file; ``ffprobe`` checks the size, the frame size and the duration before
anything decodes them (:func:`~safehold.signals.vpdq.probe_video`, the same checks and error codes); then one
``ffmpeg`` run with one decoding thread decodes the video once up to the last sample time, keeps the first frame
at or after each time, scales it down so that its short side is ``side`` pixels (never up) and writes it as a small
BMP, under a wall-clock limit for the whole; a slot of the process's video budget is held throughout
(``media.busy`` when none frees in time).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from PIL import Image

from safehold.errors import SafeholdError
from safehold.signals.budget import WorkBudget
from safehold.signals.image import load_image
from safehold.signals.media import MAX_BYTES, check_size, sniff
from safehold.signals.vpdq import private_copy, probe_video, too_slow


@dataclass(frozen=True)
class Frame:
    """One decoded frame and when it is shown, in seconds from the start."""

    timestamp: float
    image: Image.Image


def sample_times(duration: float | None, count: int) -> list[float]:
    """The middles of ``count`` equal parts of the video (at most one a second); the first frame when its
    duration is unknown."""
    if not duration or duration <= 0:
        return [0.0]
    n = max(1, min(count, int(duration)))
    return [round(duration * (i + 0.5) / n, 3) for i in range(n)]


class BoundedVideo:
    """The bounds every reader of a video's frames keeps (:class:`FrameSampler`, and the keyframe sampler of
    :mod:`safehold.signals.keyframes`), and the steps they share: the bytes checked and copied to a private
    temporary file (:meth:`private_file`), then probed before anything decodes them (:meth:`probe`).

    :param max_duration_seconds: longer videos raise ``media.too_large``.
    :param max_pixels: largest frame size of the video (width × height), ``media.too_large`` above.
    :param timeout_seconds: wall-clock limit for probing and decoding; ``media.too_large`` when reached.
    :param max_bytes: largest input accepted (``media.too_large``).
    :param slots: the process's :class:`~safehold.signals.budget.WorkBudget` of videos being decoded.
    :param tmp_dir: where the private temporary copy is written (e.g. an encrypted tmpfs).
    """

    #: What the reader does, for the message of a timeout ("sampling the video's frames").
    doing = "reading the video"

    def __init__(
        self,
        *,
        max_duration_seconds: float = 3 * 3600,
        max_pixels: int = 8192 * 8192,
        timeout_seconds: float = 60.0,
        probe_timeout_seconds: float = 30.0,
        max_bytes: int = MAX_BYTES,
        slots: WorkBudget | None = None,
        tmp_dir: str | None = None,
        ffmpeg_path: str | None = None,
        ffprobe_path: str | None = None,
    ):
        self.max_duration_seconds = float(max_duration_seconds)
        self.max_pixels = int(max_pixels)
        self.timeout_seconds = float(timeout_seconds)
        self.probe_timeout_seconds = float(probe_timeout_seconds)
        self.max_bytes = int(max_bytes)
        self.slots, self.tmp_dir = slots, tmp_dir
        self.ffmpeg_path = ffmpeg_path if ffmpeg_path is not None else shutil.which("ffmpeg")
        self.ffprobe_path = ffprobe_path if ffprobe_path is not None else shutil.which("ffprobe")

    def _timed_out(self) -> SafeholdError:
        return too_slow(self.doing, self.timeout_seconds)

    @contextmanager
    def private_file(self, data: bytes, prefix: str) -> Iterator[tuple[str, str, bool]]:
        """``data`` checked (size, not an image, ffmpeg installed) and written to a private temporary directory
        (mode 0700) for the block: ``(path, workdir, recognised)``, ``recognised`` when its bytes are a known
        video container. Removed afterwards."""
        check_size(data, self.max_bytes)
        kind = sniff(data)
        if not data or kind == "image":
            raise SafeholdError("media.unsupported_format", "content is not a video")
        if not self.ffmpeg_path:
            raise SafeholdError(
                "signal.unavailable", "ffmpeg is not installed: video frames cannot be read", status=500
            )
        workdir = tempfile.mkdtemp(prefix=prefix, dir=self.tmp_dir)
        try:
            yield private_copy(workdir, data), workdir, kind == "video"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def hold_slot(self):
        """A slot of the process's video budget for the block (nothing without a budget)."""
        return self.slots.hold(1) if self.slots is not None else nullcontext()

    def probe(self, path: str, *, recognised: bool, deadline: float) -> float | None:
        """The video's duration (``None`` when unknown) after ffprobe checked its limits (the video hash's)."""
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


class FrameSampler(BoundedVideo):
    """Evenly spread frames of a video, bounded like the video hash (module docstring).

    :param count: most frames taken.
    :param side: the short side a frame is scaled down to (frames smaller than that are left as they are).
    Other parameters: :class:`BoundedVideo`'s.
    """

    doing = "sampling the video's frames"

    def __init__(self, *, count: int = 16, side: int = 256, **limits):
        if count < 1 or side < 1:
            raise ValueError("count and side must be at least 1")
        super().__init__(**limits)
        self.count, self.side = int(count), int(side)

    def frames(self, data: bytes) -> Iterator[Frame]:
        """The sampled frames of ``data``, in time order, one decoded at a time. Raises before the first frame
        when the video is refused (``media.*``) or ffmpeg is not installed (``signal.unavailable``)."""
        with self.private_file(data, "safehold-frames-") as (path, workdir, recognised):
            with self.hold_slot():
                times = self._extract(path, workdir, recognised=recognised)
            found = False
            for i, t in enumerate(times):
                out = os.path.join(workdir, f"frame{i}.bmp")
                if os.path.exists(out) and os.path.getsize(out):
                    with open(out, "rb") as fh:
                        image = load_image(fh.read(), max_pixels=self.max_pixels)
                    os.unlink(out)
                    found = True
                    yield Frame(t, image)
            if not found:
                raise SafeholdError("media.corrupt", "no video frames could be decoded")

    def _extract(self, path: str, workdir: str, *, recognised: bool) -> list[float]:
        """Probe, then write each sampled frame as ``frame<i>.bmp``; the times asked for."""
        deadline = time.monotonic() + self.timeout_seconds
        duration = self.probe(path, recognised=recognised, deadline=deadline)
        times = sample_times(duration, self.count)
        # One pass over the video (the cost of the vPDQ hash of it): the k-th frame kept is the first at or after
        # the k-th time (``selected_n`` counts the frames kept so far); nothing after the last time is decoded.
        # (Seeking to each time instead would decode from the keyframe before it, again and again for a video with
        # few keyframes.) A video of less than one frame a second gets its frames later than the times named.
        first, step = times[0], (times[1] - times[0] if len(times) > 1 else 1.0)
        upcoming = f"{first}+{step}*selected_n"
        s = self.side
        scale = f"scale=w='if(lte(iw,ih),min(iw,{s}),-2)':h='if(lte(iw,ih),-2,min(ih,{s}))'"
        cmd = [self.ffmpeg_path, "-v", "error", "-nostdin", "-y", "-threads", "1", "-i", path, "-map", "0:v:0"]
        cmd += ["-an", "-sn", "-dn", "-vf", f"select='gte(t,{upcoming})',{scale}", "-fps_mode", "passthrough"]
        cmd += ["-frames:v", str(len(times)), "-threads", "1", "-c:v", "bmp", "-start_number", "0"]
        cmd.append(os.path.join(workdir, "frame%d.bmp"))
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out()
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=left, check=False, cwd=workdir
            )
        except subprocess.TimeoutExpired:
            raise self._timed_out() from None
        except OSError as exc:
            raise SafeholdError("signal.unavailable", f"ffmpeg could not be run: {exc}", status=500) from None
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").replace(path, "input").strip().splitlines()
            msg = (lines[-1] if lines else f"exit status {proc.returncode}")[:200]
            code = "media.corrupt" if recognised else "media.unsupported_format"
            raise SafeholdError(code, f"the video's frames could not be decoded: {msg}")
        return times
