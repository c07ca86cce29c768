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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home: Path, env: dict | None = None):
        self.env = {**os.environ, "SAFEHOLD_HOME": str(home), **(env or {})}
        if not env or "SAFEHOLD_DATABASE_URL" not in env:
            self.env.pop("SAFEHOLD_DATABASE_URL", None)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "safehold", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{self.base}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
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

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
