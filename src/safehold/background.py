"""Safehold's own background tasks: each a round of work on the domain services, run by :mod:`safehold.workers`.

These sit here, in the wiring next to :mod:`safehold.services`, not in :mod:`safehold.workers`: a task's body calls
the dispatcher, the reports, the pipeline, the evidence store, ..., all layers above the task interface. So
``safehold.workers`` knows only what a task is and how to run one, and is given the tasks to run (:func:`registry`);
the import linter sees every edge from a task to the service it uses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING

from safehold.workers.tasks import Scope, Task, load, scheduled_fetch

if TYPE_CHECKING:
    from safehold.config import Settings
    from safehold.services import Services

#: Snapshot the index when this many changes have been applied since the last snapshot.
SNAPSHOT_EVERY = 50_000
#: Reports filed per round (each is one filing run: a slow one delays the rest by at most its lease).
REPORT_BATCH = 5
REPORT_POLL_SECONDS = 2.0
#: Webhook deliveries per round (sent in parallel by the dispatcher).
DELIVERY_BATCH = 8
#: Opinions sent to exchanges per round (one at a time: sources rate-limit).
FEEDBACK_BATCH = 8

#: Screening jobs worked per round (each one call to an external classification service, within its rate limit).
SCREENING_BATCH = 8

#: Exchange rounds per task round (each exchange decides by its own period whether it is due).
EXCHANGE_BATCH = 4


def _deliver(svc: Services) -> int:
    return svc.dispatcher.run_once(limit=DELIVERY_BATCH)


def _prune_events(svc: Services) -> int:
    return svc.pipeline.prune(dt.timedelta(days=svc.settings.event_key_days))


def _flush_counters(svc: Services) -> None:
    svc.scans.flush_counts()
    svc.search.flush_counts()
    svc.seen.flush()


def _snapshot_index(svc: Services) -> None:
    """Of several API processes, only the one leading writes the snapshot they share (the same index in each)."""
    if svc.index.changes_since_snapshot >= SNAPSHOT_EVERY and svc.tasks.leads:
        svc.index.save_snapshot()


def _upkeep(s: Settings) -> float:
    """Under Celery every round is a message through Redis, sent by the beat: a longer period there."""
    return s.celery_upkeep_interval if s.tasks == "celery" else s.upkeep_interval


def _sync(s: Settings) -> float:
    return s.index_sync_interval


def _rematch(s: Settings) -> float:
    return s.rematch_interval


#: New bank entries re-matched per round of ``seen.rematch`` (one index over them, one pass over the store).
REMATCH_BATCH = 100_000

DELIVER_WEBHOOKS = "webhooks.deliver"
FILE_REPORTS = "reports.file"
#: Queues reviewers' opinions on exchange entries from closed cases, then sends those due (sharing.feedback).
DELIVER_FEEDBACK = "feedback.deliver"

#: In the order one upkeep round runs them (the index snapshot last, after everything it could include).
BUILTIN = (
    Task("index.sync", lambda svc: svc.index.sync(), every=_sync, scope=Scope.PROCESS),
    Task("terms.sync", lambda svc: svc.terms.sync(), every=_sync, scope=Scope.PROCESS),
    # Recompile the CEL rules when another process changed them; write this process's buffered shadow hits.
    Task("rules.sync", lambda svc: (svc.rules.sync(), svc.rules.flush()), every=_sync, scope=Scope.PROCESS),
    Task("counters.flush", _flush_counters, every=_sync, scope=Scope.PROCESS),
    Task("banks.flood_check", lambda svc: svc.quarantine.check(), every=_upkeep),
    Task("cases.refresh_priorities", lambda svc: svc.cases.refresh_priorities(), every=_upkeep),
    Task("events.prune", _prune_events, every=_upkeep),
    Task("conversations.prune", lambda svc: svc.conversations.prune(), every=_upkeep),
    Task("reports.followup", lambda svc: svc.reports.followup_once(), every=_upkeep),
    Task("evidence.purge", lambda svc: svc.evidence.purge_due(), every=_upkeep),
    Task("seen.purge", lambda svc: svc.seen.purge(), every=_upkeep),
    Task("index.snapshot", _snapshot_index, every=_sync, scope=Scope.PROCESS),
    # Kicked when a delivery or a report is queued; the period is the safety net (back-offs, other processes).
    Task(DELIVER_WEBHOOKS, _deliver, every=lambda s: s.webhook_poll_interval, batch=DELIVERY_BATCH),
    Task(FILE_REPORTS, lambda svc: svc.reports.file_due(REPORT_BATCH), every=lambda s: REPORT_POLL_SECONDS,
         batch=REPORT_BATCH),
    Task(DELIVER_FEEDBACK, lambda svc: svc.feedback.run_once(limit=FEEDBACK_BATCH),
         every=lambda s: s.feedback_poll_interval, batch=FEEDBACK_BATCH),

    # Calls out, so not part of an upkeep round (its batch keeps it out of UPKEEP).
    replace(scheduled_fetch("exchanges", lambda svc: svc.exchanges.fetch_due(EXCHANGE_BATCH),
                            every=lambda s: s.exchange_poll_interval), batch=EXCHANGE_BATCH),

    # Sends queued images to the external classification services (safehold.screening): calls out, own thread.
    Task("screening.run", lambda svc: svc.screening.run_once(SCREENING_BATCH),
         every=lambda s: s.screening_poll_interval, batch=SCREENING_BATCH),

    # Matches new bank entries against the seen hashes (opt-in): reads the whole store, so not an upkeep step.
    Task("seen.rematch", lambda svc: svc.rematch.run_once(REMATCH_BATCH), every=_rematch, batch=REMATCH_BATCH),
)  # fmt: skip
#: The tasks of one upkeep round (``Services.maintain_once``): everything periodic but sending to the outside.
UPKEEP = tuple(t.name for t in BUILTIN if t.batch is None)


@lru_cache(maxsize=1)
def registry() -> dict[str, Task]:
    """Every task of this installation by name: the built-in ones, then those of installed packages."""
    return load(BUILTIN)
