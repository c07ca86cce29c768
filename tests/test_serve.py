"""The real server process, as `make run` starts it: empty store, first key, first bank, first match."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.media import jpeg, variant


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env, *args) -> str:
    out = subprocess.run([sys.executable, "-m", "safehold", *args], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_serve_from_empty_store(tmp_path):
    env = {**os.environ, "SAFEHOLD_HOME": str(tmp_path / "var")}
    env.pop("SAFEHOLD_DATABASE_URL", None)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "safehold", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        assert (tmp_path / "var" / "safehold.db").exists()
        assert httpx.get(f"{base}/v1/banks").status_code == 401

        key = _cli(env, "apikey", "create", "--role", "admin", "--name", "me").split()
        token = next(w for w in key if w.startswith("sh_"))
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{base}/v1/banks", json={"name": "known"}, headers=headers).status_code == 201
        original = jpeg(42)
        r = httpx.post(f"{base}/v1/banks/known/files", headers=headers, files={"file": ("k.jpg", original)})
        assert r.status_code == 201, r.text
        r = httpx.post(f"{base}/v1/scan", headers=headers, files={"file": ("u.jpg", variant(original))})
        assert r.json()["verdict"] == "match"
        assert "Safehold" in httpx.get(f"{base}/").text
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "apikey create" in output  # the start-up message tells a new user what to do
    assert server.returncode in (0, -15)
    # A clean shutdown leaves a snapshot for a fast next start.
    assert (tmp_path / "var" / "index" / "snapshot" / "meta.json").exists()
