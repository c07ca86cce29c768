"""The task interface: background work as small named rounds that either engine can run.

A :class:`Task` is one round of some background work, given the process's ``Services``. Tasks are **at least
once**: an engine may run a round twice, or two rounds at once in different processes or machines (a worker
killed mid-task has its task given to another), so every round is idempotent. The database's leases and
idempotency keys make sure nothing is *done* twice, never the engine.

Two scopes:

- ``SHARED``: work on the shared database that any one process may do (webhook delivery, report filing, pruning,
  purging). In-process, each server process runs it on its own threads (rounds in several processes at once are
  safe, as above); with ``SAFEHOLD_TASKS=celery`` the Celery workers run it instead, when a process *kicks* it
  (a delivery was queued) or when ``safehold beat`` schedules it.
- ``PROCESS``: work on one process's own memory that **every** process serving requests must do, whatever the
  engine: catching its matching index and term lists up with other processes' changes, flushing its own
  counters, snapshotting its own index. It always runs on a thread of that process, never on a Celery worker.

Safehold's own tasks are defined in :mod:`safehold.background` (they call the domain services, above this
package) and given to the engines from there. Other packages add tasks through the entry-point group
``safehold.tasks`` (an entry point names a ``Task`` or an iterable of them); hash exchanges will register their
fetches this way, made with :func:`scheduled_fetch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from safehold import entrypoints
from safehold.errors import SafeholdError

if TYPE_CHECKING:
    from safehold.config import Settings
    from safehold.services import Services

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.tasks"


class Scope(StrEnum):
    SHARED = "shared"
    PROCESS = "process"


@dataclass(frozen=True)
class Task:
    """One kind of background work.

    ``run`` does one round and returns how many items it handled (or None). ``every`` makes the task periodic:
    the seconds between rounds, read from the settings when the engine starts. ``batch``: a round that handled
    this many may have left more, so the next round starts at once instead of after ``every``.
    """

    name: str
    run: Callable[[Services], int | None]
    every: Callable[[Settings], float] | None = None
    batch: int | None = None
    scope: Scope = Scope.SHARED

    def more(self, handled: int | None) -> bool:
        """Whether a round that handled ``handled`` items may have left work due now."""
        return self.batch is not None and (handled or 0) >= self.batch


def scheduled_fetch(name: str, fetch: Callable[[Services], int | None], every: Callable[[Settings], float]) -> Task:
    """A periodic shared task fetching from outside (e.g. a hash exchange's new signals): the kind of task
    exchanges register. ``fetch`` resumes from a checkpoint it stores itself, since it may run twice."""
    return Task(f"fetch.{name}", fetch, every=every)


def load(builtin: Iterable[Task]) -> dict[str, Task]:
    """Every task by name: ``builtin`` (Safehold's own, given by :mod:`safehold.background`), then those of
    installed packages (a broken or clashing one is logged and skipped: a plug-in never stops Safehold from
    starting)."""
    tasks = {t.name: t for t in builtin}
    for ep in entrypoints.installed(ENTRY_POINT_GROUP):
        try:
            loaded = entrypoints.load(ep, "task")
            added = [loaded] if isinstance(loaded, Task) else list(loaded)
        except (SafeholdError, TypeError) as exc:  # a failed import, or not a list of tasks
            log.error("task plug-in %s could not be loaded (%s); skipped", ep.name, exc)
            continue
        for task in added:
            if not isinstance(task, Task) or task.name in tasks:
                log.error("task plug-in %s: %r is not a Task or its name is taken; skipped", ep.name, task)
                continue
            tasks[task.name] = task
    return tasks


def periodic(tasks: Mapping[str, Task], scopes: Iterable[Scope]) -> list[Task]:
    """The periodic tasks of the given scopes, in registry order."""
    wanted = set(scopes)
    return [t for t in tasks.values() if t.every is not None and t.scope in wanted]
