"""Streams Safehold pulls itself: ffmpeg reads an HLS, RTMP or RTSP address the operator allows and hands over
JPEG frames.

**Where from.** A pulled stream is a connection Safehold opens, so its address is checked like any outbound
fetch, and more strictly: the scheme is one of :data:`SCHEMES` and every address the host name resolves to must
be loopback or private *and* inside one of the networks the operator lists (setting ``live_pull_allow``; empty,
the default, allows none). A platform's media servers are on its own network; the public internet is not a
source.

**How often.** ffmpeg decodes the stream (it must, to find frames) and encodes JPEGs at the highest sampling
rate (``fps`` filter); each JPEG then goes through the same sampler as a pushed frame, so a stream at the
baseline rate has most of them dropped before Safehold decodes anything. The ``fps`` filter puts frames on a
regular grid of the stream's own clock, so the capture time of the k-th frame is the first frame's arrival plus
``k / fps``: right for a live source (read in real time) and for a recorded one read faster than real time
(a test stream), whose frames would otherwise all look simultaneous. A stream that ends or fails stops its
reader; ffmpeg's last error line is kept for the status.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from safehold.errors import SafeholdError

SCHEMES = ("rtmp", "rtsp", "http", "https")
#: ffmpeg gives up on a source that sends nothing for this long (microseconds, its ``-rw_timeout``).
READ_TIMEOUT_US = 10_000_000
_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"


def check_url(url: str, allow: list[str]) -> str:
    """``url`` if Safehold may pull it (see the module's doc), else ``live.pull_not_allowed`` (403)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise SafeholdError("live.invalid_url", f"A stream url is {', '.join(SCHEMES)} with a host.", status=422)
    networks = [ipaddress.ip_network(n, strict=False) for n in allow]
    if not networks:
        raise _refused("no networks are allowed (setting live_pull_allow is empty)")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 1, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        message = f"The stream's host {parts.hostname!r} does not resolve."
        raise SafeholdError("live.unresolvable", message, status=422) from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not (addr.is_loopback or addr.is_private) or not any(addr in n for n in networks):
            raise _refused(f"{addr} is not in a private network the operator allows")
    return url


def _refused(why: str) -> SafeholdError:
    return SafeholdError("live.pull_not_allowed", f"Safehold may not pull this stream: {why}.", status=403)


def split_jpegs(buf: bytearray) -> list[bytes]:
    """Take the complete JPEGs off the front of ``buf`` (ffmpeg's ``mjpeg`` pipe: one JPEG after another)."""
    out = []
    while True:
        start = buf.find(_SOI)
        if start < 0:
            buf.clear()
            return out
        end = buf.find(_EOI, start + 2)
        if end < 0:
            del buf[:start]
            return out
        out.append(bytes(buf[start : end + 2]))
        del buf[: end + 2]


class Puller:
    """One ffmpeg process reading ``url`` and a thread handing its frames to ``on_frame(data, ts)`` until the
    stream ends, :meth:`stop` is called or ``on_frame`` returns False."""

    def __init__(
        self,
        url: str,
        on_frame: Callable[[bytes, float], bool],
        *,
        fps: float,
        ffmpeg: str = "ffmpeg",
        max_width: int = 1280,
        on_end: Callable[[str | None], None] | None = None,
    ):
        self.url, self.on_frame, self.fps, self.ffmpeg, self.max_width = url, on_frame, fps, ffmpeg, max_width
        self.on_end = on_end
        self.error: str | None = None
        self.frames = 0
        self._proc: subprocess.Popen | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-pull:{url}", daemon=True)

    def command(self) -> list[str]:
        scale = f"fps={self.fps:g},scale='min({self.max_width},iw)':-2"
        return [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-rw_timeout", str(READ_TIMEOUT_US), "-i", self.url,
            "-an", "-vf", scale, "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "5", "pipe:1",
        ]  # fmt: skip

    def start(self) -> Puller:
        try:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as e:
            raise SafeholdError("live.pull_failed", f"ffmpeg could not start: {e}", status=503) from None
        self._thread.start()
        return self

    def _run(self) -> None:
        buf = bytearray()
        proc = self._proc
        start = None
        try:
            while not self._stopped.is_set():
                chunk = proc.stdout.read1(1 << 16)
                if not chunk:
                    break
                buf += chunk
                for jpeg in split_jpegs(buf):
                    start = time.time() if start is None else start
                    ts = start + self.frames / self.fps
                    self.frames += 1
                    if not self.on_frame(jpeg, ts):
                        self._stopped.set()
                        break
        finally:
            self._kill()
            if not self._stopped.is_set():
                err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
                self.error = err[-1][:500] if err else None
            if self.on_end is not None:
                self.on_end(self.error)

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        self._stopped.set()
        self._kill()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
