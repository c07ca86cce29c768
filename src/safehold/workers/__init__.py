"""Background work: one task interface (:mod:`.tasks`), run in-process by default or on Celery with Redis
(:mod:`.engine`, :mod:`.celery_app`). Importing this package never imports Celery. The engines run the tasks they
are given; Safehold's own are in :mod:`safehold.background`."""

from safehold.workers.engine import InProcess, Tasks
from safehold.workers.tasks import Scope, Task, load, periodic, scheduled_fetch

__all__ = ["InProcess", "Scope", "Task", "Tasks", "load", "periodic", "scheduled_fetch"]
