"""A real ``safehold serve`` in its own process, as ``make run`` starts it, for the benchmarks that go through
HTTP; and the ``safehold`` command against the same home."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import loadgen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``log``: a file to keep the server's stderr in (its tracebacks, for a benchmark to show what a 5xx was);
    by default it goes to /dev/null. ``port``: listen there (a restart after a crash keeps its clients' address);
    by default a free one."""

    def __init__(
        self,
        home: Path,
        env: dict | None = None,
        log: Path | None = None,
        port: int | None = None,
        start_timeout: float = 90,
    ):
        self.log = log
        self.env = {**os.environ, "SAFEHOLD_HOME": str(home), **(env or {})}
        if not env or "SAFEHOLD_DATABASE_URL" not in env:
            self.env.pop("SAFEHOLD_DATABASE_URL", None)
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab") if log else None  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "safehold", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self._log or subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + start_timeout  # a store with a large bank loads its index first
        while True:
            try:
                if httpx.get(f"{self.base}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()  # not left running when the benchmark gives up on it
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


async def open_loop(base: str, path: str, token: str, bodies: list[bytes], rate: float, seconds: float) -> list[float]:
    """POST ``bodies`` (in turn) to ``path`` at ``rate`` requests/s for ``seconds`` (open loop: see
    :mod:`loadgen`); return latencies in seconds from each request's scheduled time. Any failed request fails
    the benchmark."""
    result = await loadgen.run(base, token, lambda i: loadgen.Request(path, bodies[i % len(bodies)]), rate, seconds)
    if result.errors:
        raise SystemExit(f"{result.errors} requests failed: {dict(result.statuses)}")
    return result.latencies
