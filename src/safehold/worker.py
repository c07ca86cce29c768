"""A Celery worker process: its app and its services, built from the environment.

This sits above :mod:`safehold.services` (it builds one), where :mod:`safehold.workers` cannot: the task interface
is below the wiring it runs on. ``safehold worker`` / ``safehold beat`` use it, and so does
``celery -A safehold.worker worker``: the module's ``app`` is built from the environment on first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from safehold.background import registry
from safehold.config import Settings, get_settings
from safehold.services import Services
from safehold.workers.engine import celery_app

if TYPE_CHECKING:
    from celery import Celery


class WorkerServices:
    """A worker process's services, built on its first task: no index and nothing it does not use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._svc: Services | None = None

    def __call__(self) -> Services:
        with self._lock:
            if self._svc is None:
                self._svc = Services(self.settings, load_index=False, create=False, lazy=True)
            return self._svc

    def close(self) -> None:
        with self._lock:
            if self._svc is not None:
                self._svc.close()
                self._svc = None


def worker_app(settings: Settings | None = None) -> tuple[Celery, WorkerServices]:
    settings = settings or get_settings()
    services = WorkerServices(settings)
    return celery_app().make_app(settings, registry(), services), services


def __getattr__(name: str) -> Celery:
    """``app`` for the ``celery`` command (``celery -A safehold.worker worker``)."""
    if name == "app":
        app = globals()["app"] = worker_app()[0]
        return app
    raise AttributeError(name)
