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
#: Seconds the processes may take to start on a busy machine (each loads the detectors and the index).
STARTUP_BOUND = 180.0
#: Seconds the supervisor may take to notice a dead process and have its replacement serving.
REPLACE_BOUND = 60.0


def _pid(client: httpx.Client) -> int:
    """The pid of the process behind ``client``'s kept-alive connection (``/metrics`` names it)."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return int(re.search(r'safehold_api_process\{pid="(\d+)"\}', r.text).group(1))


class Processes:
    """A kept-alive client per API process, by pid. A connection the server closed (idle past uvicorn's keep-alive
    on a busy machine) is replaced by new ones until one reaches that pid again, and an answer counts only when its
    connection still names the pid afterwards."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token
        self.clients: dict[int, httpx.Client] = {}

    def find(self, n: int, timeout: float = REPLACE_BOUND) -> None:
        """Connect until ``n`` processes are known."""
        deadline = time.monotonic() + timeout
        while len(self.clients) < n:
            assert time.monotonic() < deadline, f"only {sorted(self.clients)} answer"
            self._connect()

    def _connect(self) -> int | None:
        client = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        try:
            pid = _pid(client)
        except httpx.TransportError:
            pid = None
        if pid is None or pid in self.clients:
            client.close()
            time.sleep(0.05)
        else:
            self.clients[pid] = client
        return pid

    def forget(self, pid: int) -> None:
        self.clients.pop(pid).close()

    def ask(self, pid: int, call):
        """``call(client)`` answered by process ``pid``."""
        deadline = time.monotonic() + REPLACE_BOUND
        while True:
            assert time.monotonic() < deadline, f"process {pid} does not answer"
            client = self.clients.get(pid)
            if client is None:
                self._connect()
                continue
            try:
                answer = call(client)
                if _pid(client) == pid:
                    return answer
            except httpx.TransportError:
                pass
            self.forget(pid)

    def everywhere(self, value: str, present: bool = True) -> None:
        """Wait until every process answers ``value`` as (not) matching; fails past :data:`SYNC_BOUND`."""
        start = time.monotonic()
        waiting = set(self.clients)
        while waiting:
            assert time.monotonic() - start < SYNC_BOUND, f"processes {sorted(waiting)} never saw the change"
            waiting = {pid for pid in waiting if self.ask(pid, lambda c: _matches(c, value)) != present}
            time.sleep(0.05)

    def close(self) -> None:
        for pid in list(self.clients):
            self.forget(pid)


def _matches(client: httpx.Client, value: str) -> bool:
    r = client.post("/v1/scan", json={"signal_type": "pdq", "value": value})
    assert r.status_code == 200, r.text
    return any(m["entry"]["value"] == value for m in r.json()["matches"])


def test_two_processes_share_the_port_the_index_and_survive_a_kill(tmp_path, database_url):
    env = {**os.environ, "SAFEHOLD_HOME": str(tmp_path / "home"), "SAFEHOLD_DATABASE_URL": database_url}
    env.pop("SAFEHOLD_WEB_WORKERS", None)
    _cli(env, "db", "upgrade")
    _cli(env, "bank", "create", "known")
    before = secrets.token_hex(32)
    _cli(env, "bank", "add-hash", "known", "pdq", before)  # in the snapshot the processes start from
    token = next(
        w for w in _cli(env, "apikey", "create", "--name", "t", "--role", "admin").split() if w.startswith("sh_")
    )
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "safehold", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    procs = Processes(base, token)
    try:
        wait_until_serving(server, base, timeout=STARTUP_BOUND)
        procs.find(2)
        assert server.pid not in procs.clients
        procs.everywhere(before)

        # A change through one process reaches the other; a change by the CLI reaches both.
        one = next(iter(procs.clients))
        added = secrets.token_hex(32)
        entry = procs.ask(one, lambda c: c.post("/v1/banks/known/entries", json={"signal_type": "pdq", "value": added}))
        assert entry.status_code == 201, entry.text
        procs.everywhere(added)
        by_cli = secrets.token_hex(32)
        _cli(env, "bank", "add-hash", "known", "pdq", by_cli)
        procs.everywhere(by_cli)
        r = procs.ask(one, lambda c: c.delete(f"/v1/entries/{entry.json()['id']}"))
        assert r.status_code == 200, r.text
        procs.everywhere(added, present=False)
        ready = procs.ask(one, lambda c: c.get("/readyz")).json()
        assert ready["status"] == "ok" and ready["indexes"]["pdq"]["changes_behind"] == 0

        # SIGKILL one process: the supervisor starts another, which has every change; the survivor never stops.
        victim, survivor = list(procs.clients)
        os.kill(victim, signal.SIGKILL)
        procs.forget(victim)
        assert procs.ask(survivor, lambda c: _matches(c, by_cli))
        procs.find(2)
        assert victim not in procs.clients
        for value in (before, by_cli):
            procs.everywhere(value)
        procs.everywhere(added, present=False)
    finally:
        procs.close()
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
