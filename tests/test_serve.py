"""The real server process, as `make run` starts it: empty store, first key, first bank, first match."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import httpx

from tests.media import jpeg, variant


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(server: subprocess.Popen, base: str, timeout: float = 60) -> None:
    """Poll ``/v1/health`` until it answers; fail with the server's output if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert server.poll() is None, server.stdout.read()
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)


def _cli(env, *args) -> str:
    out = subprocess.run([sys.executable, "-m", "safehold", *args], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def _serve(tmp_path, stderr=subprocess.STDOUT, **extra_env) -> tuple[subprocess.Popen, str, dict]:
    """``safehold serve`` on a free port with a store in ``tmp_path/var``: the process, its URL, its environment."""
    env = {**os.environ, "SAFEHOLD_HOME": str(tmp_path / "var"), **extra_env}
    env.pop("SAFEHOLD_DATABASE_URL", None)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "safehold", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}", env


def test_serve_from_empty_store(tmp_path):
    server, base, env = _serve(tmp_path)
    try:
        wait_until_serving(server, base)
        assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700  # it holds the keys
        assert stat.S_IMODE((tmp_path / "var" / "safehold.db").stat().st_mode) == 0o600
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
    assert f"home      {tmp_path / 'var'}  (set by SAFEHOLD_HOME)" in output  # ...and which store it serves
    assert server.returncode in (0, -15)
    # A clean shutdown leaves a snapshot for a fast next start.
    assert (tmp_path / "var" / "index" / "snapshot" / "meta.json").exists()


def test_port_in_use_is_a_clear_error_before_the_banner(tmp_path):
    env = {**os.environ, "SAFEHOLD_HOME": str(tmp_path / "var")}
    env.pop("SAFEHOLD_DATABASE_URL", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "safehold", "serve", "--port", str(port)], env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2, out
    assert out.stderr.strip() == (
        f"error [serve.port_in_use]: Port {port} on 127.0.0.1 is already in use (another Safehold?). "
        f"Choose another: make run PORT={port + 1}, or safehold serve --port {port + 1}."
    )
    assert out.stdout == ""  # no banner announcing a port it cannot serve
    assert not (tmp_path / "var").exists()


def test_serve_with_json_logs_and_multiprocess_metrics(tmp_path):
    """``SAFEHOLD_LOG_FORMAT=json``: every line on stderr a JSON object, uvicorn's too. ``PROMETHEUS_MULTIPROC_DIR``:
    the counters are written there and /metrics sums them."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server, base, env = _serve(
        tmp_path, subprocess.PIPE, SAFEHOLD_LOG_FORMAT="json", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    try:
        wait_until_serving(server, base)
        # Generous timeouts: the first /readyz opens the store and the index, slow on a loaded CI machine.
        assert httpx.get(f"{base}/livez", timeout=30).json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz", timeout=30).json()["status"] == "ok"
        key = _cli(env, "apikey", "create", "--role", "auditor", "--name", "prometheus").split()
        token = next(w for w in key if w.startswith("sh_"))
        r = httpx.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "scrape-1"}, timeout=30
        )
        assert r.status_code == 200 and r.headers["x-request-id"] == "scrape-1"
        assert 'safehold_http_requests_total{method="GET",route="/livez",status="2xx"} 1.0' in r.text
        assert any(metrics_dir.glob("*.db"))  # the counters live in the shared directory
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    lines = [json.loads(line) for line in errors.splitlines() if line.strip()]
    assert any(line["logger"].startswith("uvicorn") and "Started server" in line["message"] for line in lines)
    assert token not in errors
