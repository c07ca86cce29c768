"""Keyframes and scene changes of a video, one decoded frame at a time: the pictures a known image would be in.

A banked image re-filmed or pasted into a video is rarely on a frame that vPDQ's one-a-second grid and an image
bank would both agree on, but it almost always starts a new scene or sits on a keyframe: an encoder puts an
intra frame at a cut. :func:`decode_keyframes` runs one ``ffmpeg`` over a video file and yields ``(timestamp,
PIL image)`` for

- every keyframe (``pict_type`` I), and
- every frame whose scene-change score (``select='gt(scene,T)'``) is above ``scene_threshold``,

never two closer than ``min_gap`` seconds (a quarter of a second: a strobing video cannot send every frame through
the pipe), never more than ``max_per_minute`` in any minute of the video (a budget over a sliding 60-second window,
not an even spacing: a picture shown for 2 s right after a cut still gets its frame unless the last minute
already used the whole budget) and never more than ``max_frames`` in all. With ``scenes=False`` only keyframes
are decoded (``-skip_frame nokey``: the decoder skips every other frame, many times faster, for a first look or a
live stream segment).

Bounds, so that a long or hostile video costs no more than its limits: one decoding thread; frames are scaled
down in ffmpeg so their long side is at most ``side`` pixels (never up) and come through a pipe one at a time, as
small BMPs — nothing holds more than one frame, however long the video; a wall-clock ``deadline`` kills ffmpeg
(``media.too_large``, as the video hash does). The caller probes the file first
(:func:`safehold.signals.vpdq.probe_video`: size, frame size, duration) — :class:`KeyframeSampler` does, with the
same checks, error codes and video slots as vPDQ and :class:`~safehold.signals.frames.FrameSampler`.

A pure library: no cases, no storage, no banks. The live stream sampler may use :func:`decode_keyframes` on its
segments too.
"""

from __future__ import annotations

import collections
import math
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

from safehold.errors import SafeholdError
from safehold.signals.frames import BoundedVideo, Frame
from safehold.signals.image import load_image
from safehold.signals.vpdq import too_slow

#: Scene-change score above which a frame starts a new scene (ffmpeg's ``scene``, 0–1; 0.3 is its usual cut-off).
SCENE_THRESHOLD = 0.3
#: Most frames kept per minute of video (keyframes and scene changes together).
MAX_PER_MINUTE = 30
#: Shortest time between two frames ffmpeg hands over, in seconds.
MIN_GAP = 0.25
#: Long side of a frame given out (PDQ works on a 64×64 reduction; 512 is what vPDQ hashes and enough to review).
SIDE = 512
#: Largest BMP accepted from ffmpeg's pipe (a frame of ``side`` × ``side`` is far below it).
_MAX_FRAME_BYTES = 64 * 1024 * 1024
_PTS_TIME = re.compile(rb"\bpts_time:\s*(-?[0-9.eE+-]+|nan)")


def max_frames_for(duration: float | None, max_per_minute: int) -> int:
    """The most frames a video of ``duration`` seconds gives: the per-minute budget for each minute begun."""
    minutes = math.ceil((duration or 60.0) / 60.0)
    return max(1, minutes * max_per_minute)


def decode_keyframes(
    path: str,
    *,
    deadline: float,
    timed_out=None,
    scenes: bool = True,
    scene_threshold: float = SCENE_THRESHOLD,
    max_per_minute: int = MAX_PER_MINUTE,
    max_frames: int = 10_000,
    min_gap: float = MIN_GAP,
    side: int = SIDE,
    max_pixels: int = 8192 * 8192,
    ffmpeg_path: str | None = None,
    recognised: bool = True,
) -> Iterator[Frame]:
    """The keyframes and scene changes of the (already probed) video at ``path``, in time order (module
    docstring). ``deadline`` is a :func:`time.monotonic` time; reaching it raises ``timed_out()`` (default
    ``media.too_large``). A decoder failure raises ``media.corrupt`` (``media.unsupported_format`` when the
    bytes were not ``recognised`` as a video). Closing the iterator early stops ffmpeg."""
    timed_out = timed_out or (lambda: too_slow("decoding the video's keyframes", 0))
    exe = ffmpeg_path if ffmpeg_path is not None else shutil.which("ffmpeg")
    if not exe:
        raise SafeholdError("signal.unavailable", "ffmpeg is not installed: video frames cannot be read", status=500)
    if max_per_minute < 1 or side < 1 or max_frames < 1:
        raise ValueError("max_per_minute, side and max_frames must be at least 1")
    gap = max(0.0, float(min_gap))
    wanted = f"eq(pict_type\\,I)+gt(scene\\,{float(scene_threshold)})" if scenes else "1"
    # ``prev_selected_t`` is NaN before the first frame kept: the first wanted frame always passes.
    select = f"select='({wanted})*(isnan(prev_selected_t)+gte(t-prev_selected_t\\,{gap}))'"
    scale = f"scale=w='min(iw,{side})':h='min(ih,{side})':force_original_aspect_ratio=decrease"
    cmd = [exe, "-hide_banner", "-nostats", "-loglevel", "info", "-nostdin", "-threads", "1"]
    if not scenes:
        cmd += ["-skip_frame", "nokey"]
    cmd += ["-i", path, "-map", "0:v:0", "-an", "-sn", "-dn", "-threads", "1", "-filter_threads", "1"]
    cmd += ["-vf", f"{select},showinfo,{scale}", "-fps_mode", "passthrough"]
    cmd += ["-f", "image2pipe", "-c:v", "bmp", "pipe:1"]
    if time.monotonic() >= deadline:
        raise timed_out()
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=os.path.dirname(path)
        )
    except OSError as exc:
        raise SafeholdError("signal.unavailable", f"ffmpeg could not be run: {exc}", status=500) from None
    times: queue.Queue[float | None] = queue.Queue()
    tail: collections.deque[bytes] = collections.deque(maxlen=4)  # the last lines that are not frame reports
    reader = threading.Thread(target=_read_log, args=(proc.stderr, times, tail), daemon=True)
    reader.start()
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), kill)
    timer.daemon = True
    timer.start()
    recent: collections.deque[float] = collections.deque()  # the times of the frames given in the last minute
    given = 0
    try:
        while given < max_frames:
            data = _read_bmp(proc.stdout)
            if data is None:
                break
            try:
                t = times.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                t = None
            if t is None:  # the log ended before its frame report: ffmpeg stopped (killed, or a bug)
                break
            while recent and recent[0] <= t - 60.0:
                recent.popleft()
            if len(recent) >= max_per_minute:
                continue  # this minute's budget is spent
            recent.append(t)
            given += 1
            yield Frame(round(t, 3), load_image(data, max_pixels=max_pixels))
        if given >= max_frames:
            proc.kill()  # enough: the rest of the video is not decoded
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        reader.join(timeout=1.0)
    if expired.is_set():
        raise timed_out()
    if proc.returncode != 0 and given < max_frames:
        lines = [ln.decode("utf-8", "replace").replace(path, "input").strip() for ln in tail]
        msg = (lines[-1] if lines else f"exit status {proc.returncode}")[:200]
        code = "media.corrupt" if recognised else "media.unsupported_format"
        raise SafeholdError(code, f"the video's keyframes could not be decoded: {msg}")


def _read_log(stream, times: queue.Queue, tail: collections.deque) -> None:
    """Hand each frame report's ``pts_time`` (``showinfo``) to ``times``; keep the last other lines; ``None``
    when the log ends."""
    try:
        for line in stream:
            m = _PTS_TIME.search(line) if b"showinfo" in line else None
            if m is None:
                tail.append(line)
                continue
            try:
                t = float(m.group(1))
            except ValueError:
                t = 0.0
            times.put(t if t == t and t >= 0 else 0.0)
    finally:
        times.put(None)
        stream.close()


def _read_exact(stream, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_bmp(stream) -> bytes | None:
    """The next BMP of an ``image2pipe`` stream (its size is in its header), or ``None`` at the end."""
    head = _read_exact(stream, 14)
    if head is None or head[:2] != b"BM":
        return None
    size = int.from_bytes(head[2:6], "little")
    if size <= 14 or size > _MAX_FRAME_BYTES:
        return None
    rest = _read_exact(stream, size - 14)
    return None if rest is None else head + rest


class KeyframeSampler(BoundedVideo):
    """Keyframes and scene changes of a video given as bytes, bounded like the video hash (module docstring).

    The bytes go to a private temporary file; :func:`~safehold.signals.vpdq.probe_video` checks the frame size
    and duration before anything decodes them; a slot of the process's video budget (``slots``) is held while
    ffmpeg runs (``media.busy`` when none frees in time); ``timeout_seconds`` bounds probe and decoding together.
    Parameters beyond the four below: :class:`~safehold.signals.frames.BoundedVideo`'s.
    """

    doing = "reading the video's keyframes"

    def __init__(
        self,
        *,
        scenes: bool = True,
        scene_threshold: float = SCENE_THRESHOLD,
        max_per_minute: int = MAX_PER_MINUTE,
        side: int = SIDE,
        **limits,
    ):
        super().__init__(**limits)
        self.scenes, self.scene_threshold = bool(scenes), float(scene_threshold)
        self.max_per_minute, self.side = int(max_per_minute), int(side)

    def frames(self, data: bytes) -> Iterator[Frame]:
        """The keyframes and scene changes of ``data``, in time order, one decoded at a time. Refusals
        (``media.*``) come before the first frame, except a decoder failure or the deadline met part-way."""
        with self.private_file(data, "safehold-keyframes-") as (path, _workdir, recognised):
            yield from self.frames_of_path(path, recognised=recognised)

    def frames_of_path(self, path: str, *, recognised: bool = True) -> Iterator[Frame]:
        """:meth:`frames` of a private file already on disk (not copied; its directory is ffmpeg's)."""
        deadline = time.monotonic() + self.timeout_seconds
        with self.hold_slot():
            duration = self.probe(path, recognised=recognised, deadline=deadline)
            yield from decode_keyframes(
                path,
                deadline=deadline,
                timed_out=self._timed_out,
                scenes=self.scenes,
                scene_threshold=self.scene_threshold,
                max_per_minute=self.max_per_minute,
                max_frames=max_frames_for(duration, self.max_per_minute),
                side=self.side,
                max_pixels=self.max_pixels,
                ffmpeg_path=self.ffmpeg_path,
                recognised=recognised,
            )
