"""The task interface: background work as small named rounds that either engine can run, and the built-in tasks.

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

Other packages add tasks through the entry-point group ``safehold.tasks`` (an entry point names a ``Task`` or an
iterable of them); hash exchanges will register their fetches this way, made with :func:`scheduled_fetch`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING

from safehold import entrypoints
from safehold.errors import SafeholdError

if TYPE_CHECKING:
    from safehold.config import Settings
    from safehold.services import Services

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.tasks"
#: Snapshot the index when this many changes have been applied since the last snapshot.
SNAPSHOT_EVERY = 50_000
#: Reports filed per round (each is one filing run: a slow one delays the rest by at most its lease).
REPORT_BATCH = 5
REPORT_POLL_SECONDS = 2.0
#: Webhook deliveries per round (sent in parallel by the dispatcher).
DELIVERY_BATCH = 8


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


# ---------------------------------------------------------------- built-in task bodies


def _deliver(svc: Services) -> int:
    return svc.dispatcher.run_once(limit=DELIVERY_BATCH)


def _prune_events(svc: Services) -> int:
    return svc.pipeline.prune(dt.timedelta(days=svc.settings.event_key_days))


def _flush_counters(svc: Services) -> None:
    svc.scans.flush_counts()
    svc.search.flush_counts()


def _snapshot_index(svc: Services) -> None:
    if svc.index.changes_since_snapshot >= SNAPSHOT_EVERY:
        svc.index.save_snapshot()


def _upkeep(s: Settings) -> float:
    """Under Celery every round is a message through Redis, sent by the beat: a longer period there."""
    return s.celery_upkeep_interval if s.tasks == "celery" else s.upkeep_interval


def _sync(s: Settings) -> float:
    return s.index_sync_interval


DELIVER_WEBHOOKS = "webhooks.deliver"
FILE_REPORTS = "reports.file"

#: In the order one upkeep round runs them (the index snapshot last, after everything it could include).
BUILTIN = (
    Task("index.sync", lambda svc: svc.index.sync(), every=_sync, scope=Scope.PROCESS),
    Task("terms.sync", lambda svc: svc.terms.sync(), every=_sync, scope=Scope.PROCESS),
    Task("counters.flush", _flush_counters, every=_sync, scope=Scope.PROCESS),
    Task("cases.refresh_priorities", lambda svc: svc.cases.refresh_priorities(), every=_upkeep),
    Task("events.prune", _prune_events, every=_upkeep),
    Task("conversations.prune", lambda svc: svc.conversations.prune(), every=_upkeep),
    Task("reports.followup", lambda svc: svc.reports.followup_once(), every=_upkeep),
    Task("evidence.purge", lambda svc: svc.evidence.purge_due(), every=_upkeep),
    Task("index.snapshot", _snapshot_index, every=_sync, scope=Scope.PROCESS),
    # Kicked when a delivery or a report is queued; the period is the safety net (back-offs, other processes).
    Task(DELIVER_WEBHOOKS, _deliver, every=lambda s: s.webhook_poll_interval, batch=DELIVERY_BATCH),
    Task(FILE_REPORTS, lambda svc: svc.reports.file_due(REPORT_BATCH), every=lambda s: REPORT_POLL_SECONDS,
         batch=REPORT_BATCH),
)  # fmt: skip
#: The tasks of one upkeep round (``Services.maintain_once``): everything periodic but sending to the outside.
UPKEEP = tuple(t.name for t in BUILTIN if t.batch is None)


@lru_cache(maxsize=1)
def registry() -> dict[str, Task]:
    """Every task by name: the built-in ones, then those of installed packages (a broken or clashing one is
    logged and skipped: a plug-in never stops Safehold from starting)."""
    tasks = {t.name: t for t in BUILTIN}
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


def periodic(scopes: Iterable[Scope]) -> list[Task]:
    """The periodic tasks of the given scopes, in registry order."""
    wanted = set(scopes)
    return [t for t in registry().values() if t.every is not None and t.scope in wanted]
