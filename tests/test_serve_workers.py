"""``safehold serve --workers 2``: two API processes on one port, each answering; a bank change made through one
process (or the CLI) matchable in every process within a bounded time; a worker killed with SIGKILL replaced with
nothing lost; SIGTERM stopping them all."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.test_serve import _cli, _free_port, wait_until_serving

#: Seconds a bank change may take to reach every process (the upkeep syncs twice a second).
SYNC_BOUND = 10.0
#: Seconds the supervisor may take to notice a dead process and have its replacement serving.
REPLACE_BOUND = 60.0


def _pid(client: httpx.Client) -> int:
    """The pid of the process behind ``client``'s kept-alive connection (``/metrics`` names it)."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return int(re.search(r'safehold_api_process\{pid="(\d+)"\}', r.text).group(1))


def _clients(base: str, token: str, n: int, timeout: float = REPLACE_BOUND) -> dict[int, httpx.Client]:
    """``n`` clients, each kept alive on a different process (new connections until that many pids are seen)."""
    by_pid: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + timeout
    while len(by_pid) < n:
        assert time.monotonic() < deadline, f"only {sorted(by_pid)} answer"
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        pid = _pid(client)
        if pid in by_pid:
            client.close()
            time.sleep(0.1)
        else:
            by_pid[pid] = client
    return by_pid


def _matches(client: httpx.Client, value: str) -> bool:
    r = client.post("/v1/scan", json={"signal_type": "pdq", "value": value})
    assert r.status_code == 200, r.text
    return any(m["entry"]["value"] == value for m in r.json()["matches"])


def _everywhere(clients: dict[int, httpx.Client], value: str, present: bool = True) -> float:
    """Seconds until every process answers ``value`` as (not) matching; fails past :data:`SYNC_BOUND`."""
    start = time.monotonic()
    waiting = set(clients)
    while waiting:
        assert time.monotonic() - start < SYNC_BOUND, f"processes {sorted(waiting)} never saw the change"
        waiting = {pid for pid in waiting if _matches(clients[pid], value) != present}
        time.sleep(0.05)
    return time.monotonic() - start


def test_two_processes_share_the_port_the_index_and_survive_a_kill(tmp_path, database_url):
    env = {**os.environ, "SAFEHOLD_HOME": str(tmp_path / "home"), "SAFEHOLD_DATABASE_URL": database_url}
    env.pop("SAFEHOLD_WEB_WORKERS", None)
    _cli(env, "db", "upgrade")
    _cli(env, "bank", "create", "known")
    before = secrets.token_hex(32)
    _cli(env, "bank", "add-hash", "known", "pdq", before)  # in the snapshot the processes start from
    token = re.search(r"\bsh_\w+", _cli(env, "apikey", "create", "--name", "t", "--role", "admin")).group(0)
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "safehold", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    clients: dict[int, httpx.Client] = {}
    try:
        wait_until_serving(server, base)
        clients = _clients(base, token, 2)
        assert server.pid not in clients
        _everywhere(clients, before)

        # A change through one process reaches the other; a change by the CLI reaches both.
        one = next(iter(clients.values()))
        added = secrets.token_hex(32)
        r = one.post("/v1/banks/known/entries", json={"signal_type": "pdq", "value": added})
        assert r.status_code == 201, r.text
        _everywhere(clients, added)
        by_cli = secrets.token_hex(32)
        _cli(env, "bank", "add-hash", "known", "pdq", by_cli)
        _everywhere(clients, by_cli)
        r = one.delete(f"/v1/entries/{r.json()['id']}")
        assert r.status_code == 200, r.text
        _everywhere(clients, added, present=False)
        ready = one.get("/readyz").json()
        assert ready["status"] == "ok" and ready["indexes"]["pdq"]["changes_behind"] == 0

        # SIGKILL one process: the supervisor starts another, which has every change; the survivor never stops.
        victim, survivor = list(clients)
        os.kill(victim, signal.SIGKILL)
        clients.pop(victim).close()
        assert _matches(clients[survivor], by_cli)
        deadline = time.monotonic() + REPLACE_BOUND
        while len(clients) < 2:
            assert time.monotonic() < deadline, "the killed process was not replaced"
            clients.update({pid: c for pid, c in _clients(base, token, 1).items() if pid not in clients})
        assert victim not in clients
        for value in (before, by_cli):
            _everywhere(clients, value)
        _everywhere(clients, added, present=False)
    finally:
        for client in clients.values():
            client.close()
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
            log.seek(0)
            output = log.read()
            log.close()
    assert code == 0, output
    assert "Stopping parent process" in output, output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_one_process_runs_the_shared_tasks(settings, monkeypatch):
    """Of several processes, one holds the shared-work lock (and writes the snapshot); another takes over when
    it stops."""
    from safehold.services import Services

    settings.web_workers = 2
    first, second = Services(settings), Services(settings)
    try:
        first.tasks.start()
        second.tasks.start()
        assert first.tasks.leads and not second.tasks.leads
        assert first.tasks._shared is not None and second.tasks._shared is None
        first.close()
        deadline = time.monotonic() + 10
        while not second.tasks.leads:
            assert time.monotonic() < deadline, "the lock was not taken over"
            time.sleep(0.1)
        assert second.tasks._shared is not None
    finally:
        second.close()
