"""``safehold worker`` and ``safehold beat``: the Celery side of ``SAFEHOLD_TASKS=celery`` (docs/deployment.md).

Celery is imported when one of them runs, never at the CLI's start.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from safehold.cli.common import err, fail


def _settings():
    from safehold.config import get_settings
    from safehold.store.db import require_store

    settings = get_settings()
    require_store(settings)  # a worker never creates a store: it works on the servers' one
    if settings.tasks != "celery":
        err.print("note: SAFEHOLD_TASKS is not 'celery': the servers run their shared tasks themselves", style="dim")
    return settings


def _level() -> int:
    """The command's log level (``-v``: INFO, else WARNING): routine rounds every second are no news."""
    return logging.getLogger().getEffectiveLevel()


def worker(
    concurrency: Annotated[int, typer.Option(help="Tasks run at once (threads).")] = 4,
    hostname: Annotated[str | None, typer.Option(help="Worker name (default: celery@<host>).")] = None,
    beat: Annotated[bool, typer.Option("--beat", help="Also schedule periodic tasks (run one such worker).")] = False,
) -> None:
    """Run shared background tasks taken from Redis: webhook delivery, report filing and upkeep. Run as many as
    needed, on any machines with the same settings as the servers."""
    from safehold.worker import worker_app

    with fail():
        app, services = worker_app(_settings())
    # Threads: the tasks wait on HTTP and the database; one process keeps one set of services and connections.
    running = app.Worker(pool_cls="threads", concurrency=concurrency, hostname=hostname, beat=beat, loglevel=_level())
    try:
        running.start()
    finally:
        services.close()
    raise typer.Exit(running.exitcode or 0)


def beat() -> None:
    """Send the periodic shared tasks to the workers on their schedule. Run exactly one (a second one only
    doubles harmless rounds)."""
    from safehold.worker import worker_app

    with fail():
        app, _ = worker_app(_settings())
    app.Beat(loglevel=_level()).run()
