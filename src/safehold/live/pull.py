"""Streams Safehold pulls itself: ffmpeg reads an HLS, RTMP or RTSP address the operator allows and hands over
JPEG frames.

**Where from.** A pulled stream is a connection Safehold opens, so its address is checked like any outbound
fetch, and more strictly: the scheme is one of :data:`SCHEMES` and every address the host name resolves to must
be loopback or private *and* inside one of the networks the operator lists (setting ``live_pull_allow``; empty,
the default, allows none). A platform's media servers are on its own network; the public internet is not a
source. The registered address is not the only one ffmpeg opens, though: an HLS playlist names its segments and
variants by URL, on any host, and an HTTP server may redirect. So ffmpeg's HTTP(S) requests all go through a
:class:`Guard`, a proxy on loopback that resolves each request's host, checks every address as above and
connects to the checked address itself (a name that resolves elsewhere the second time changes nothing); a
segment elsewhere is refused (403) and ffmpeg reports the error.

**How often.** ffmpeg decodes the stream (it must, to find frames) and encodes JPEGs at the highest sampling
rate (``fps`` filter); each JPEG then goes through the same sampler as a pushed frame, so a stream at the
baseline rate has most of them dropped before Safehold decodes anything. The ``fps`` filter puts frames on a
regular grid of the stream's own clock, so the capture time of the k-th frame is the first frame's arrival plus
``k / fps``: right for a live source (read in real time) and for a recorded one read faster than real time
(a test stream), whose frames would otherwise all look simultaneous. A stream that ends or fails stops its
reader; ffmpeg's last error line is kept for the status.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
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
    check_host(parts.hostname, parts.port or 1, allow)
    return url


def check_host(host: str, port: int, allow: list[str]) -> str:
    """The first address of ``host`` when every address it resolves to is allowed, else a refusal."""
    networks = [ipaddress.ip_network(n, strict=False) for n in allow]
    if not networks:
        raise _refused("no networks are allowed (setting live_pull_allow is empty)")
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        message = f"The stream's host {host!r} does not resolve."
        raise SafeholdError("live.unresolvable", message, status=422) from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not (addr.is_loopback or addr.is_private) or not any(addr in n for n in networks):
            raise _refused(f"{addr} is not in a private network the operator allows")
    return infos[0][4][0]


def _refused(why: str) -> SafeholdError:
    return SafeholdError("live.pull_not_allowed", f"Safehold may not pull this stream: {why}.", status=403)


class Guard:
    """An HTTP proxy on loopback for ffmpeg (its ``-http_proxy``): each request — ``GET http://host/…`` or
    ``CONNECT host:443`` — goes on only to a host :func:`check_host` allows, by the address it checked; any other
    is answered 403. One request per connection (ffmpeg is told not to keep connections), one thread each, the
    request head bounded; bytes are relayed as they come, never kept."""

    HEAD_MAX = 16 << 10
    TIMEOUT = READ_TIMEOUT_US / 1e6

    def __init__(self, allow: list[str]):
        self.allow = list(allow)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.refused = 0
        threading.Thread(target=self._accept, name="live-pull-guard", daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="live-pull-guard:conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(self.TIMEOUT)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk or len(head) > self.HEAD_MAX:
                        return
                    head += chunk
                line, _, rest = head.partition(b"\r\n")
                method, target, version = line.decode("latin-1").split(" ", 2)
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    host, port, first = host.strip("[]"), int(port), b""
                else:
                    parts = urlsplit(target)
                    if parts.scheme != "http" or not parts.hostname:
                        raise ValueError(target)
                    host, port = parts.hostname, parts.port or 80
                    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                    first = f"{method} {path} {version}\r\n".encode("latin-1") + rest
                try:
                    addr = check_host(host, port, self.allow)
                except SafeholdError:
                    self.refused += 1
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                with socket.create_connection((addr, port), timeout=self.TIMEOUT) as up:
                    if method == "CONNECT":
                        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    else:
                        up.sendall(first)
                    _relay(conn, up, self.TIMEOUT)
            except (OSError, ValueError, UnicodeError):
                return


def _relay(a: socket.socket, b: socket.socket, timeout: float) -> None:
    socks = [a, b]
    while True:
        ready, _, _ = select.select(socks, [], [], timeout)
        if not ready:
            return
        for s in ready:
            data = s.recv(1 << 16)
            if not data:
                return
            (b if s is a else a).sendall(data)


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
        proxy: str | None = None,
    ):
        self.url, self.on_frame, self.fps, self.ffmpeg, self.max_width = url, on_frame, fps, ffmpeg, max_width
        self.on_end, self.proxy = on_end, proxy
        self.error: str | None = None
        self.frames = 0
        self._proc: subprocess.Popen | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-pull:{url}", daemon=True)

    def command(self) -> list[str]:
        scale = f"fps={self.fps:g},scale='min({self.max_width},iw)':-2"
        # HTTP(S) through the guard's proxy, a new connection (so a new check) for every request
        guard = (
            ["-http_proxy", self.proxy, "-http_persistent", "0"] if self.proxy and self.url.startswith("http") else []
        )
        return [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-rw_timeout", str(READ_TIMEOUT_US), *guard, "-i", self.url,
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
