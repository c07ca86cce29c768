"""A real ``safehold serve`` in its own process, as ``make run`` starts it, for the benchmarks that go through
HTTP; and the ``safehold`` command against the same home."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``log``: a file to keep the server's stderr in (its tracebacks, for a benchmark to show what a 5xx was);
    by default it goes to /dev/null."""

    def __init__(self, home: Path, env: dict | None = None, log: Path | None = None):
        self.log = log
        self.env = {**os.environ, "SAFEHOLD_HOME": str(home), **(env or {})}
        if not env or "SAFEHOLD_DATABASE_URL" not in env:
            self.env.pop("SAFEHOLD_DATABASE_URL", None)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab") if log else None  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "safehold", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self._log or subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{self.base}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start{': ' + self.log_tail() if log else ''}")
            time.sleep(0.2)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run([sys.executable, "-m", "safehold", *args], env=self.env, input=stdin,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        if out.returncode:
            raise SystemExit(out.stderr)
        return out.stdout

    def token(self, role: str) -> str:
        return json.loads(self.cli("apikey", "create", "--name", f"bench-{role}", "--role", role, "--json"))["key"]

    def key(self, role: str) -> dict:
        return {"Authorization": f"Bearer {self.token(role)}"}

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's stderr (empty when it is not kept)."""
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server; one still finishing background work after 30 s is killed (a bench's measurements are
        taken by then, and a slow shutdown must not lose them)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self._log:
            self._log.close()


#: Idle connections older than this are not reused (below uvicorn's default keep-alive timeout of 5 s).
KEEP_ALIVE = 4.0


async def open_loop(base: str, path: str, token: str, bodies: list[bytes], rate: float, seconds: float) -> list[float]:
    """POST ``bodies`` (in turn) to ``path`` at ``rate`` requests/s for ``seconds``, each at its scheduled time
    whether or not the last one answered; return latencies in seconds, from the scheduled time (so a stalled
    server shows).

    A minimal HTTP/1.1 keep-alive client on asyncio streams: httpx's async client costs about a millisecond of
    CPU per request, which at 500 requests/s would measure the load generator, not the server.
    """
    host, port = base.removeprefix("http://").split(":")
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    latencies: list[float] = []
    errors = 0

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The most recently used idle connection, unless the server may have closed it for being idle (its
        keep-alive timeout), as a client's pool would; else a new one."""
        while idle:
            reader, writer, used = idle.pop()
            if time.perf_counter() - used < KEEP_ALIVE:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(host, int(port))

    async def one(body: bytes, due: float) -> None:
        nonlocal errors
        reader, writer = await connection()
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
        writer.write(head.encode() + body)
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answer = await reader.readexactly(length)
        latencies.append(time.perf_counter() - due)
        if b" 200 " not in status:
            errors += 1
            print("failed:", status.decode().strip(), answer[:300].decode(errors="replace"), file=sys.stderr)
        idle.append((reader, writer, time.perf_counter()))

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(bodies[i % len(bodies)], due)))
    await asyncio.gather(*tasks)
    for _, writer, _ in idle:
        writer.close()
    if errors:
        raise SystemExit(f"{errors} requests failed")
    return latencies
