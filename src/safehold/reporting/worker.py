"""Files submitted reports in the background: a daemon thread calling :meth:`ReportService.file_due`.

Every round drains what is due, then sleeps ``POLL_SECONDS`` or until a report is submitted in this process.
Several processes may run a worker: each report is filed by the one run holding its lease
(:mod:`safehold.reporting.filing`), the others skip it.
"""

from __future__ import annotations

import logging
import threading

from safehold.config import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
#: Reports filed per round (each is one run of its own: a slow one delays the rest by at most its lease).
BATCH = 5


class ReportWorker:
    def __init__(self, reports, settings: Settings):
        self.reports, self.settings = reports, settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        reports.on_submit(self.wake)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="safehold-reports", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the run in progress (a filing run ends at its next step at the latest)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.cybertip_timeout + 5)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> int:
        """File what is due now, one batch at a time; returns how many runs were made."""
        runs = 0
        while not self._stop.is_set() or self._thread is None:
            n = self.reports.file_due(BATCH)
            runs += n
            if n < BATCH:
                break
        return runs

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:  # the database may be briefly away; the next round retries
                log.exception("report filing round failed")
            self._wake.wait(POLL_SECONDS)
