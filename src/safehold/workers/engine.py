"""The two engines behind the task interface, and :class:`Tasks`, which picks between them per ``SAFEHOLD_TASKS``.

- ``inprocess`` (default): every periodic task runs on daemon threads of the server process: webhook delivery and
  report filing on a thread each, so a slow receiver never delays index upkeep; the short upkeep rounds one after
  the other on one thread. A kick wakes the task's thread at once.
- ``celery``: the process runs only its ``PROCESS`` tasks itself; a kick of a shared task becomes a Celery message
  on Redis (sent by the process's :class:`Sender` thread), run by whichever ``safehold worker`` takes it, and
  ``safehold beat`` sends the periodic ones.

With several API processes on one machine (``safehold serve --workers N``) every process still runs its own
``PROCESS`` tasks, but the in-process ``SHARED`` ones run in one process only, the holder of a lock file
(:class:`SharedLock`): N processes would otherwise each poll, prune and purge the same tables N times a second
for no gain (the leases keep it correct, not cheap), and on SQLite queue behind each other for the one writer.
When the holder dies the kernel drops its lock and another process takes it within :data:`LOCK_RETRY` seconds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from safehold.errors import SafeholdError
from safehold.metrics import TASK_FAILURES
from safehold.workers.tasks import Scope, Task, periodic

if TYPE_CHECKING:
    from celery import Celery

    from safehold.services import Services

log = logging.getLogger(__name__)

#: Seconds between two warnings of kicks that could not be sent to Celery.
WARN_EVERY = 60
#: Seconds a stopping process waits for its last kicks to be sent.
SEND_TIMEOUT = 10.0
#: Seconds between two tries of a process waiting for the shared-work lock (how long shared work may pause when
#: the process holding it dies).
LOCK_RETRY = 2.0


def _run_logged(task: Task, svc: Services) -> bool:
    """Run one round, logging a failure (the next round retries); returns whether more may be due now."""
    try:
        return task.more(task.run(svc))
    except Exception:  # the database may be briefly away; keep the process serving
        log.exception("background task %s failed", task.name)
        TASK_FAILURES.labels(task.name).inc()
        return False


class InProcess:
    """Runs periodic tasks on daemon threads of this process until :meth:`stop`.

    A task that sends to the outside in batches (``batch``: webhook delivery, report filing) gets a thread of its
    own, so a slow receiver never delays the rest. The short upkeep rounds share one thread and run one after the
    other, each at its own period: run side by side, their writes would queue behind each other on SQLite's single
    writer lock, and every request and delivery that writes would queue behind them.
    """

    def __init__(self, svc: Services, tasks: Iterable[Task]):
        self.svc = svc
        self.tasks = list(tasks)
        self._stop = threading.Event()
        self._wake: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        groups: dict[str, list[Task]] = {}
        for task in self.tasks:
            groups.setdefault(task.name if task.batch is not None else "upkeep", []).append(task)
        for name, group in groups.items():
            wake = threading.Event()
            self._wake.update({t.name: wake for t in group})
            thread = threading.Thread(target=self._loop, args=(group, wake), name=f"safehold-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def kick(self, name: str) -> bool:
        """Wake the task's thread, if this engine runs it."""
        wake = self._wake.get(name)
        if wake is not None:
            wake.set()
        return wake is not None

    def stop(self) -> None:
        """Stop after the rounds in progress; a round sending to the outside ends within its request timeout."""
        self._stop.set()
        for wake in self._wake.values():
            wake.set()
        s = self.svc.settings
        for thread in self._threads:
            thread.join(timeout=max(s.webhook_timeout, s.cybertip_timeout) + 5)
        self._threads.clear()

    def _loop(self, group: list[Task], wake: threading.Event) -> None:
        """Run each task of ``group`` when its period is up (or at once when kicked, or when its last round said
        more is due), in order, then sleep until the next is due."""
        settings = self.svc.settings
        due = dict.fromkeys((t.name for t in group), 0.0)
        while not self._stop.is_set():
            kicked = wake.is_set()
            wake.clear()
            for task in group:
                now = time.monotonic()
                if self._stop.is_set() or not (kicked or now >= due[task.name]):
                    continue
                more = _run_logged(task, self.svc)
                due[task.name] = 0.0 if more else time.monotonic() + (task.every(settings) if task.every else 1e9)
            wake.wait(max(0.0, min(due.values()) - time.monotonic()))


class Sender:
    """Sends kicks from one daemon thread, so the thread kicking never waits on Redis (a request thread running
    its after-commit hooks would otherwise stall for the broker's timeouts and retries while Redis is away).

    Kicks waiting are a set of task names: a kick of a task already waiting adds nothing (one round finds all the
    work queued meanwhile), so the queue never holds more than one kick per task. A kick that cannot be sent is
    dropped, with a warning at most once per :data:`WARN_EVERY` seconds: the beat's periodic round is the safety
    net, and a log line per request while Redis is down would drown everything else.
    """

    def __init__(self, send: Callable[[str], None]):
        self._send = send
        self._waiting: dict[str, None] = {}  # insertion-ordered set
        self._sending = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._warned_at: float | None = None

    def start(self, warm: Callable[[], object] | None = None) -> None:
        """Start the thread (a server does at start; a command at its first kick). ``warm`` is called first, here:
        whatever the first send would build (the Celery app) is not built on a request's time."""
        if warm is not None:
            warm()
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="safehold-kicks", daemon=True)
                self._thread.start()

    def put(self, name: str) -> None:
        self.start()
        with self._changed:
            self._waiting[name] = None
            self._changed.notify_all()

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the kicks waiting to be sent (or dropped)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._waiting or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                name = next(iter(self._waiting))
                del self._waiting[name]
                self._sending = True
            try:
                self._send(name)
            except Exception:
                self._warn(name)
            finally:
                with self._changed:
                    self._sending = False
                    self._changed.notify_all()

    def _warn(self, name: str) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "could not hand task %s to Celery; its next scheduled round does it (further failures are not logged "
                "for %d s)",
                name,
                WARN_EVERY,
                exc_info=True,
            )


class SharedLock:
    """An exclusive ``flock`` on a file, taken by one process of those sharing a home: :meth:`start` keeps trying on
    a daemon thread until it holds it, then calls ``on_acquired`` once. The kernel releases it when the process
    exits, however it exits (SIGKILL included), so there is no lease to expire and no stale holder."""

    def __init__(self, path: Path, on_acquired: Callable[[], None]):
        self.path = path
        self._on_acquired = on_acquired
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def start(self) -> None:
        if not self._try():
            self._thread = threading.Thread(target=self._wait, name="safehold-shared-lock", daemon=True)
            self._thread.start()

    def _wait(self) -> None:
        while not self._stop.wait(LOCK_RETRY):
            if self._try():
                return

    def _try(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        log.info("process %d runs the shared background tasks of this machine's API processes", os.getpid())
        self._on_acquired()
        return True

    def stop(self) -> None:
        """Stop trying; the lock, if held, is kept until :meth:`release` (the holder's rounds still run)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LOCK_RETRY + 1)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


class Tasks:
    """This process's background work: what it runs itself, and what it hands to Celery.

    The engine is read from the settings when work is started or kicked, so a command (which starts nothing)
    still hands a kick to the Celery workers, and an in-process kick before :meth:`start` is simply dropped (the
    periodic round finds the work).
    """

    def __init__(self, svc: Services, registry: Callable[[], Mapping[str, Task]]):
        """``registry``: every task by name (:func:`safehold.background.registry`), read when needed."""
        self.svc = svc
        self.registry = registry
        self._local: InProcess | None = None
        #: With ``SAFEHOLD_WEB_WORKERS`` > 1: the shared tasks, run once this process holds :attr:`_lock`.
        self._shared: InProcess | None = None
        self._lock: SharedLock | None = None
        self._sender = Sender(self._send)  # built now: two first kicks at once must not make two

    @property
    def distributed(self) -> bool:
        return self.svc.settings.tasks == "celery"

    def start(self, names: Iterable[str] | None = None) -> None:
        """Run the periodic tasks here: all of them in-process, only the per-process ones with Celery; or exactly
        ``names`` (e.g. ``safehold delivery run``)."""
        if self._local is not None:
            return
        if self.distributed:
            self._sender.start(warm=lambda: self.celery)  # Celery imported and built now: fails at start if missing
        if names is not None:
            tasks = [self.registry()[n] for n in names]
        elif self.svc.settings.web_workers > 1:  # one of several API processes: shared work in one of them
            tasks = periodic(self.registry(), [Scope.PROCESS])
            self._lock = SharedLock(self.svc.settings.home / "run" / "shared-tasks.lock", self._lead)
        else:
            tasks = periodic(self.registry(), [Scope.PROCESS] if self.distributed else [Scope.PROCESS, Scope.SHARED])
        self._local = InProcess(self.svc, tasks)
        self._local.start()
        if self._lock is not None:
            self._lock.start()

    def _lead(self) -> None:
        """This process now holds the shared-work lock: run the shared tasks (unless Celery runs them)."""
        if not self.distributed:
            self._shared = InProcess(self.svc, periodic(self.registry(), [Scope.SHARED]))
            self._shared.start()

    @property
    def leads(self) -> bool:
        """Whether this process does the work done once per machine (the index snapshot on disk): always, but
        for one of several API processes that does not hold the shared-work lock."""
        return self._lock is None or self._lock.held

    def kick(self, name: str) -> None:
        """Run ``name`` soon: a delivery or a report was queued. Never fails nor holds up the caller (a request's
        after-commit hook): a Celery message is sent by :class:`Sender`'s thread, and one that cannot be sent is
        dropped, since what was queued is in the database and the next periodic round finds it."""
        if any(engine is not None and engine.kick(name) for engine in (self._local, self._shared)):
            return
        if self.distributed and self.registry()[name].scope is Scope.SHARED:
            self._sender.put(name)

    def run_now(self, name: str) -> int | None:
        """One round of ``name`` in this thread (upkeep, tests, commands); failures raise."""
        return self.registry()[name].run(self.svc)

    def stop(self) -> None:
        """Stop the work run here, and send the kicks still waiting (a command exits right after its kick)."""
        if self._lock is not None:
            self._lock.stop()
        for engine in (self._local, self._shared):
            if engine is not None:
                engine.stop()
        self._local = self._shared = None
        if self._lock is not None:
            self._lock.release()  # after the shared rounds in progress: another process takes over
        self._sender.close(timeout=SEND_TIMEOUT)

    def _send(self, name: str) -> None:
        self.celery.send_task(name, retry_policy={"max_retries": 2, "interval_start": 0.1})

    @cached_property
    def celery(self) -> Celery:
        """The Celery app sending this process's kicks; its tasks run on this process's services (a worker thread
        in tests)."""
        return celery_app().make_app(self.svc.settings, self.registry(), lambda: self.svc)


def celery_app():
    """:mod:`safehold.workers.celery_app`, or ``tasks.celery_missing`` when Celery is not installed."""
    try:
        from safehold.workers import celery_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("celery", "kombu", "redis"):
            raise
        raise SafeholdError(
            "tasks.celery_missing",
            "SAFEHOLD_TASKS=celery needs Celery with Redis support: pip install 'safehold[celery]'.",
            status=500,
        ) from None
    return celery_app
