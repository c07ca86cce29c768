"""The Celery app of ``SAFEHOLD_TASKS=celery``: every shared task it is given as a Celery task, Redis as broker.

Delivery is at least once, end to end. A worker acknowledges a message only after its task ran
(``acks_late``); a worker killed mid-task (SIGKILL, a lost machine) never acknowledges it, and Redis gives the
message to another worker once ``SAFEHOLD_TASK_VISIBILITY_TIMEOUT`` has passed. The task then runs again, which is
safe: its work is leased row by row in the database (a delivery still leased by the dead worker waits for its lease
to lapse) and each webhook carries the same idempotency key on every attempt. ``safehold beat`` sends every
periodic task on its schedule as the safety net for anything a kick missed.

A worker process's own app and services are built by :mod:`safehold.worker` (above the wiring of the process).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from celery import Celery

from safehold.config import Settings
from safehold.metrics import TASK_FAILURES
from safehold.workers.tasks import Scope, Task, periodic

if TYPE_CHECKING:
    from safehold.services import Services

QUEUE = "safehold"
#: Seconds a beat message may wait before a worker drops it unrun: a round not started within its period (or
#: this, if longer) is dropped, since the next one does the same work. Never less than this, or clock skew between
#: the beat and the workers, or a queue busy for a moment, would drop every round of a task with a short period.
BEAT_EXPIRES_MIN = 60.0


def make_app(settings: Settings, tasks: Mapping[str, Task], services: Callable[[], Services]) -> Celery:
    """A Celery app of the shared ``tasks``, run on ``services()`` (the worker's own, built on first use)."""
    app = Celery("safehold", broker=settings.redis_url, set_as_current=False)
    visibility = settings.task_visibility_timeout
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,  # acknowledged after the task ran: a killed worker's task is given to another
        task_reject_on_worker_lost=True,  # ...also when a pool process dies under it
        worker_prefetch_multiplier=1,  # a worker holds no more messages than it runs
        task_ignore_result=True,  # the outcome is in the database; there is no result backend
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # Look for messages of dead workers every few seconds (not Kombu's default 100 s).
            "unacked_restore_interval": max(1, min(10, int(visibility))),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 5,
        },
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_scheduler="celery.beat:Scheduler",  # in memory: schedules seconds apart leave nothing worth a file
        beat_schedule={
            t.name: {
                "task": t.name,
                "schedule": t.every(settings),
                "options": {"expires": max(t.every(settings), BEAT_EXPIRES_MIN)},
            }
            for t in periodic(tasks, [Scope.SHARED])
        },
    )
    for task in tasks.values():
        if task.scope is Scope.SHARED:
            app.task(name=task.name, shared=False)(_body(app, task, services))  # this app only
    return app


def _body(app: Celery, task: Task, services: Callable[[], Services]) -> Callable[[], None]:
    def run() -> None:
        try:
            more = task.more(task.run(services()))
        except Exception:  # counted (safehold.metrics), then Celery logs it as it always has
            TASK_FAILURES.labels(task.name).inc()
            raise
        if more:  # more is due: hand the next round to any worker
            app.send_task(task.name)

    run.__name__ = run.__qualname__ = task.name.replace(".", "_")
    run.__doc__ = f"Background task {task.name} (safehold.workers)."
    return run
