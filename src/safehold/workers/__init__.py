"""Background work: one task interface (:mod:`.tasks`), run in-process by default or on Celery with Redis
(:mod:`.engine`, :mod:`.celery_app`). Importing this package never imports Celery."""

from safehold.workers.engine import InProcess, Tasks
from safehold.workers.tasks import DELIVER_WEBHOOKS, FILE_REPORTS, UPKEEP, Scope, Task, registry, scheduled_fetch

__all__ = [
    "DELIVER_WEBHOOKS",
    "FILE_REPORTS",
    "UPKEEP",
    "InProcess",
    "Scope",
    "Task",
    "Tasks",
    "registry",
    "scheduled_fetch",
]
