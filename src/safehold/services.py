"""Wires the services of one process together; the API, the console and the CLI all start from here.

Holds no business logic: it opens the database (applying migrations on first start), loads the matching
index, and hands out the services.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from safehold.actions.dispatcher import Dispatcher
from safehold.actions.service import ActionService
from safehold.actions.webhooks import WebhookService
from safehold.audit import AuditService
from safehold.auth.apikeys import ApiKeyService
from safehold.auth.sessions import SessionService
from safehold.auth.users import UserService
from safehold.banks.index import BankIndex
from safehold.banks.service import BankService
from safehold.cases.events import EventService
from safehold.cases.service import CaseService
from safehold.config import Settings, get_settings
from safehold.evidence.service import EvidenceService
from safehold.evidence.store import open_store
from safehold.reporting.service import ReportService
from safehold.reporting.worker import ReportWorker
from safehold.review.service import ReviewService
from safehold.review.wellness import WellnessService
from safehold.rules.conversations import ConversationService
from safehold.rules.posts import PostService
from safehold.rules.search import SearchService
from safehold.rules.terms import TermLibrary
from safehold.scanning.service import ScanService
from safehold.store import migrate
from safehold.store.db import Database
from safehold.store.sealing import LocalKey, Sealer
from safehold.store.vault import MediaVault
from safehold.text.grooming.model import GroomingModel

log = logging.getLogger(__name__)

#: Snapshot the index when this many changes have been applied since the last snapshot.
SNAPSHOT_EVERY = 50_000


class Services:
    def __init__(self, settings: Settings | None = None, *, load_index: bool = True):
        self.settings = settings or get_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.settings.effective_database_url)
        if not migrate.is_current(self.db):
            migrate.upgrade(self.db)
        self.audit = AuditService(self.db)
        self.index = BankIndex(self.db, snapshot_dir=self.settings.index_dir)
        self.banks = BankService(self.db, on_change=self.index.sync, audit=self.audit)
        self.scans = ScanService(self.db, self.index, self.settings)
        self.apikeys = ApiKeyService(self.db, audit=self.audit)
        s = self.settings
        self.sealer = Sealer(LocalKey.load(s.key_file, s.instance_key))
        self.vault = MediaVault(s.vault_dir, self.sealer)
        self.users = UserService(self.db, self.audit, s)
        self.sessions = SessionService(self.db, self.audit, s, self.users)
        self.cases = CaseService(self.db, self.audit, s)
        self.webhooks = WebhookService(self.db, self.audit, self.sealer, s)
        self.actions = ActionService(self.db, self.audit, self.webhooks)
        self.dispatcher = Dispatcher(self.db, self.webhooks, s)
        self.events = EventService(self.db, self.audit, self.cases, self.scans, self.vault, self.actions)
        self.wellness = WellnessService(self.db, self.audit)
        self.review = ReviewService(
            self.db, self.audit, self.cases, self.actions, self.vault, self.banks, self.wellness, s
        )
        self.evidence_store = open_store(s)
        self.evidence = EvidenceService(self.db, self.audit, self.evidence_store, self.vault, s)
        self.reports = ReportService(self.db, self.audit, self.cases, self.evidence, s)
        self.report_worker = ReportWorker(self.reports, s)
        self.terms = TermLibrary(
            self.db,
            self.audit,
            grooming_model=GroomingModel.load(s.grooming_model) if s.grooming_model else None,
            alert_threshold=s.grooming_alert_threshold,
        )
        self.conversations = ConversationService(self.db, self.audit, self.cases, self.terms, s)
        self.search = SearchService(self.db, self.terms)
        self.posts = PostService(self.terms, self.scans, self.events, s)
        self._index_loaded = False
        if load_index:
            self.load_index()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load_index(self) -> None:
        """Load the matching index (snapshot or rebuild) once; commands that never match skip it."""
        if not self._index_loaded:
            self.index.load()
            self._index_loaded = True

    def maintain_once(self) -> None:
        """One round of background upkeep: catch up with other processes' changes, persist counters,
        reload changed term lists, re-rank open cases as they age, snapshot the index when it has moved on enough."""
        self.index.sync()
        self.terms.sync()
        self.scans.flush_counts()
        self.search.flush_counts()
        self.cases.refresh_priorities()
        self.events.prune(dt.timedelta(days=self.settings.event_key_days))
        self.conversations.prune()
        self.reports.followup_once()
        self.evidence.purge_due()
        if self.index.changes_since_snapshot >= SNAPSHOT_EVERY:
            self.index.save_snapshot()

    def start_background(self) -> None:
        # Build the text detectors before serving: the search routes run on the event loop, and the first query
        # must not wait for the term lists to be read and compiled.
        self.terms.sync()

        def loop() -> None:
            while not self._stop.wait(self.settings.index_sync_interval):
                try:
                    self.maintain_once()
                except Exception:  # keep serving; the next round retries
                    log.exception("background maintenance failed")

        self._thread = threading.Thread(target=loop, name="safehold-maintenance", daemon=True)
        self._thread.start()
        # Webhook delivery runs on its own thread: a slow receiver never delays index upkeep.
        self.dispatcher.start()
        self.report_worker.start()

    def close(self) -> None:
        self._stop.set()
        self.dispatcher.stop()
        self.report_worker.stop()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            self.scans.flush_counts()
            self.search.flush_counts()
            if self.index.changes_since_snapshot:
                self.index.save_snapshot()
        finally:
            self.db.dispose()
