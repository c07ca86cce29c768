"""A private PostgreSQL cluster and a private Redis for the soak and fault benchmarks, on free ports in a temporary
directory, so that a benchmark may restart or kill them without disturbing anyone else's servers on the machine.

``with private_postgres() as pg, private_redis() as redis:`` gives objects with ``url`` (SQLAlchemy URL for
``SAFEHOLD_DATABASE_URL``, ``redis://`` URL for ``SAFEHOLD_REDIS_URL``), ``restart()`` and ``pid``; both are
removed when the block ends. PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server import free_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SystemExit(f"no {name} under /usr/lib/postgresql/*/bin: install the PostgreSQL server package")
    return found[-1]


class PrivatePostgres:
    """One cluster in ``root`` listening on 127.0.0.1:``port`` (and a socket in ``root``), trust auth, database
    ``safehold``."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/safehold"
        if self.user:
            shutil.chown(root, self.user, self.user)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.start()
        self._run(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "safehold")

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", self.user, "--", *args] if self.user else list(args)
        out = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if out.returncode:
            raise SystemExit(f"{' '.join(args[:2])} failed: {out.stderr.strip() or out.stdout.strip()}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(_pg_bin("pg_ctl"), action, "-D", str(self.data), "-w", "-t", "60", "-l",
                  str(self.root / "postgres.log"), "-o", options, *extra)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, as on a failover or an operator's restart."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


class PrivateRedis:
    """One ``redis-server`` on 127.0.0.1:``port``, without persistence (Safehold keeps nothing in Redis that
    matters: docs/deployment.md)."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.root)],
            stdout=open(self.root / "redis.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115 (the child keeps it)
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG"
        ):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not start: see {self.root / 'redis.log'}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        """Kill it (SIGKILL: whatever it held is lost, as on a crash) and start an empty one on the same port."""
        self.stop(signal.SIGKILL)
        self.start()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0


@contextmanager
def _private(kind: type[PrivatePostgres] | type[PrivateRedis], prefix: str) -> Iterator:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    service = None
    try:
        service = kind(root)
        yield service
    finally:
        if service:
            try:
                service.stop()
            except SystemExit:  # already stopped (a fault run killed it)
                pass
        shutil.rmtree(root, ignore_errors=True)


def private_postgres():
    """A private PostgreSQL cluster for the ``with`` block (:class:`PrivatePostgres`)."""
    return _private(PrivatePostgres, "safehold-pg-")


def private_redis():
    """A private Redis for the ``with`` block (:class:`PrivateRedis`)."""
    return _private(PrivateRedis, "safehold-redis-")
