"""Wires the services of one process together; the API, the console and the CLI all start from here.

Holds no business logic: it opens the store (creating it only when asked, applying migrations), loads the
matching index, hands out the services, and starts this process's background work (:mod:`safehold.workers`).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from safehold.config import Settings, get_settings
from safehold.store.db import open_database

if TYPE_CHECKING:
    from safehold.actions.dispatcher import Dispatcher
    from safehold.actions.service import ActionService
    from safehold.actions.webhooks import WebhookService
    from safehold.audit import AuditService
    from safehold.auth.apikeys import ApiKeyService
    from safehold.auth.sessions import SessionService
    from safehold.auth.users import UserService
    from safehold.banks.index import BankIndex
    from safehold.banks.service import BankService
    from safehold.cases.service import CaseService
    from safehold.classifiers.registry import Classifiers
    from safehold.evidence.service import EvidenceService
    from safehold.evidence.store import EvidenceStore
    from safehold.intake.appeals import AppealService
    from safehold.intake.service import UserReportService
    from safehold.pipeline.classifier_policy import ClassifierPolicies
    from safehold.pipeline.events import EventService
    from safehold.pipeline.live import LiveService
    from safehold.pipeline.service import Pipeline
    from safehold.reporting.service import ReportService
    from safehold.review.service import ReviewService
    from safehold.review.wellness import WellnessService
    from safehold.rules.book import RuleBook
    from safehold.rules.conversations import ConversationService
    from safehold.rules.posts import PostService
    from safehold.rules.search import SearchService
    from safehold.rules.terms import TermLibrary
    from safehold.safety.ages import AgeBook
    from safehold.safety.assurance import AssuranceService
    from safehold.safety.contact_service import ContactService
    from safehold.safety.media import MediaCheck
    from safehold.safety.prompts import Prompts
    from safehold.scanning.service import ScanService
    from safehold.screening.service import ScreeningQueue
    from safehold.sharing.contribution import ContributionService
    from safehold.sharing.feedback import FeedbackService
    from safehold.sharing.peers import PeerService
    from safehold.sharing.quarantine import QuarantineService
    from safehold.sharing.rematch import Rematcher
    from safehold.sharing.service import ExchangeService
    from safehold.store.groupcommit import GroupCommit
    from safehold.store.sealing import Sealer
    from safehold.store.seen import SeenHashes
    from safehold.store.vault import MediaVault
    from safehold.transparency.engine import Facts
    from safehold.transparency.service import TransparencyService
    from safehold.workers import Tasks


class Services:
    """Every service, each built on first use (with the modules it needs) or all at once.

    Built at once by default (``lazy=False``): a server or a test fails at start on bad configuration, not at its
    first request. The CLI passes ``lazy=True``: a command pays only for what it uses (``apikey list`` loads the
    database layer, not the matching kernels or the HTTP clients), which is most of its start-up time.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        load_index: bool = True,
        create: bool = True,
        lazy: bool = False,
    ):
        """``create``: make the home and database if missing (the server, tests); commands that only use an
        existing store pass False and get ``store.not_found`` instead of a new, empty store."""
        self.settings = settings or get_settings()
        self.db = open_database(self.settings, create=create)
        self._index_loaded = False
        if not lazy:
            for name in _SERVICES:
                getattr(self, name)
        if load_index:
            self.load_index()

    @cached_property
    def tasks(self) -> Tasks:
        from safehold.background import registry
        from safehold.workers import Tasks

        return Tasks(self, registry)

    @cached_property
    def audit(self) -> AuditService:
        from safehold.audit import AuditService

        return AuditService(self.db)

    @cached_property
    def index(self) -> BankIndex:
        from safehold.banks.index import BankIndex

        return BankIndex(self.db, snapshot_dir=self.settings.index_dir)

    @cached_property
    def banks(self) -> BankService:
        from safehold.banks.service import BankService

        # Late-bound: listing banks must not build the index (and load the matching kernels).
        return BankService(
            self.db,
            on_change=lambda: self.index.sync(),
            audit=self.audit,
            batch_rows=self.settings.import_batch_rows,
        )

    @cached_property
    def scans(self) -> ScanService:
        from safehold.scanning.service import ScanService

        return ScanService(self.db, self.index, self.settings)

    @cached_property
    def quarantine(self) -> QuarantineService:
        from safehold.sharing.quarantine import QuarantineService

        return QuarantineService(self.db, self.audit, self.settings)

    @cached_property
    def apikeys(self) -> ApiKeyService:
        from safehold.auth.apikeys import ApiKeyService

        return ApiKeyService(self.db, audit=self.audit)

    @cached_property
    def sealer(self) -> Sealer:
        from safehold.store.keyring import ring_for
        from safehold.store.sealing import Sealer

        return Sealer(ring_for(self.settings, "instance"))

    @cached_property
    def vault(self) -> MediaVault:
        from safehold.store.vault import MediaVault

        return MediaVault(self.settings.vault_dir, self.sealer)

    @cached_property
    def users(self) -> UserService:
        from safehold.auth.users import UserService

        return UserService(self.db, self.audit, self.settings, sealer=lambda: self.sealer)

    @cached_property
    def sessions(self) -> SessionService:
        from safehold.auth.sessions import SessionService

        return SessionService(self.db, self.audit, self.settings, self.users)

    @cached_property
    def cases(self) -> CaseService:
        from safehold.cases.service import CaseService

        return CaseService(self.db, self.audit, self.settings)

    @cached_property
    def webhooks(self) -> WebhookService:
        from safehold.actions.webhooks import WebhookService
        from safehold.background import DELIVER_WEBHOOKS

        hooks = WebhookService(self.db, self.audit, self.sealer, self.settings)
        hooks.on_enqueue(lambda: self.tasks.kick(DELIVER_WEBHOOKS))  # a new delivery is sent at once
        return hooks

    @cached_property
    def actions(self) -> ActionService:
        from safehold.actions.service import ActionService

        return ActionService(self.db, self.audit, self.webhooks)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from safehold.actions.dispatcher import Dispatcher

        return Dispatcher(self.db, self.webhooks, self.settings)

    @cached_property
    def classifiers(self) -> Classifiers:
        return load_classifiers(self.settings, budget=self.scans.pixels, video_slots=self.scans.videos)

    @cached_property
    def ages(self) -> AgeBook:
        from safehold.safety.ages import AgeBook

        st = self.settings
        return AgeBook(
            self.db, self.audit, cache_ttl=st.age_cache_ttl_seconds, estimation_buffer=st.age_estimation_buffer_years
        )

    @cached_property
    def assurance(self) -> AssuranceService:
        from safehold.safety.assurance import AssuranceService

        return AssuranceService(self.ages, self.settings)

    @cached_property
    def prompts(self) -> Prompts:
        from safehold.safety.prompts import Prompts

        return Prompts(self.db, self.audit, reload_seconds=self.settings.safety_reload_seconds)

    @cached_property
    def media_check(self) -> MediaCheck:
        from safehold.safety.media import MediaCheck

        return MediaCheck(
            self.db,
            self.audit,
            self.ages,
            self.classifiers,
            self.pipeline,
            self.prompts,
            reload_seconds=self.settings.safety_reload_seconds,
        )

    @cached_property
    def contact(self) -> ContactService:
        from safehold.safety.contact_service import ContactService

        st = self.settings
        return ContactService(
            self.db,
            self.audit,
            self.ages.bands_resolved,
            self.ages.cached,
            policy_ttl=st.contact_policy_ttl,
            cache_ttl=st.contact_cache_ttl,
            cache_accounts=st.contact_cache_accounts,
            prompt_for=lambda key, locale: self.prompts.get(key, locale),
        )

    @cached_property
    def pipeline(self) -> Pipeline:
        from safehold.pipeline.service import Pipeline

        return Pipeline(
            self.db, self.cases, self.actions, self.vault, self.classifiers, self.index, self.seen,
            screening=self.screening, ages=self.ages, policies=self.classifier_policies, writes=self.writes,
            rules=self.rules,
        )  # fmt: skip

    @cached_property
    def rules(self) -> RuleBook:
        from safehold.rules.book import RuleBook

        st = self.settings
        return RuleBook(
            self.db, self.audit, require_approval=st.rules_require_approval, ages=self.ages,
            backtest_rows=st.rules_backtest_rows, backtest_seconds=st.rules_backtest_seconds,
        )  # fmt: skip

    @cached_property
    def screening(self) -> ScreeningQueue:
        from safehold.screening.service import ScreeningQueue

        # Late-bound: the pipeline is handed this queue when it is built, and the queue hands hits back to it.
        return ScreeningQueue(self.db, self.audit, self.sealer, self.settings, lambda: self.pipeline)

    @cached_property
    def transparency_facts(self) -> Facts:
        from safehold.transparency.engine import Facts

        return Facts(self.db, self.settings.transparency_refresh_seconds)

    @cached_property
    def transparency(self) -> TransparencyService:
        from safehold.transparency.service import TransparencyService

        return TransparencyService(self.db, self.audit, self.transparency_facts, self.settings)

    @cached_property
    def classifier_policies(self) -> ClassifierPolicies:
        from safehold.pipeline.classifier_policy import ClassifierPolicies

        return ClassifierPolicies(self.db, self.audit, self.classifiers)

    @cached_property
    def rematch(self) -> Rematcher:
        from safehold.sharing.rematch import Rematcher

        return Rematcher(
            self.db, self.seen, self.scans, self.pipeline, self.quarantine, self.settings.index_sync_interval
        )

    @cached_property
    def seen(self) -> SeenHashes:
        from safehold.store.seen import SeenHashes

        return SeenHashes(self.db, enabled=self.settings.seen_hashes, days=self.settings.seen_hashes_days)

    @cached_property
    def events(self) -> EventService:
        from safehold.pipeline.events import EventService

        return EventService(
            self.pipeline,
            self.scans,
            metadata_limits=(self.settings.max_metadata_bytes, self.settings.max_metadata_depth),
        )

    @cached_property
    def wellness(self) -> WellnessService:
        from safehold.review.wellness import WellnessService

        return WellnessService(self.db, self.audit)

    @cached_property
    def review(self) -> ReviewService:
        from safehold.review.service import ReviewService

        review = ReviewService(
            self.db, self.audit, self.cases, self.actions, self.vault, self.banks, self.wellness, self.settings
        )
        # Late-bound: the reports waiting on a case get its outcome (intake sits above review).
        review.on_closed(lambda s, case, actor: self.user_reports.case_closed(s, case, actor))
        return review

    @cached_property
    def user_reports(self) -> UserReportService:
        from safehold.intake.service import UserReportService

        return UserReportService(self.db, self.audit, self.pipeline, self.evidence, self.webhooks, self.settings)

    @cached_property
    def appeals(self) -> AppealService:
        from safehold.intake.appeals import AppealService

        return AppealService(self.db, self.audit, self.webhooks)

    @cached_property
    def evidence_store(self) -> EvidenceStore:
        from safehold.evidence.store import open_store

        return open_store(self.settings)

    @cached_property
    def evidence(self) -> EvidenceService:
        from safehold.evidence.service import EvidenceService
        from safehold.reporting.evidence import EvidenceFacts

        return EvidenceService(self.db, self.audit, self.evidence_store, self.vault, self.settings, EvidenceFacts())

    @cached_property
    def reports(self) -> ReportService:
        from safehold.background import FILE_REPORTS
        from safehold.reporting.service import ReportService

        reports = ReportService(self.db, self.audit, self.cases, self.evidence, self.settings)
        reports.on_submit(lambda: self.tasks.kick(FILE_REPORTS))
        return reports

    @cached_property
    def terms(self) -> TermLibrary:
        from safehold.rules.terms import TermLibrary
        from safehold.text.grooming.model import GroomingModel

        s = self.settings
        return TermLibrary(
            self.db,
            self.audit,
            grooming_model=GroomingModel.load(s.grooming_model) if s.grooming_model else None,
            alert_threshold=s.grooming_alert_threshold,
        )

    @cached_property
    def conversations(self) -> ConversationService:
        from safehold.rules.conversations import ConversationService

        return ConversationService(
            self.db, self.audit, self.pipeline, self.terms, self.settings, self.ages, writes=self.writes
        )

    @cached_property
    def live(self) -> LiveService:
        from safehold.pipeline.live import LiveService
        from safehold.pipeline.live_claims import StreamClaims

        def chat_alert(conversation_id: str) -> bool:
            return bool(self.conversations.get(conversation_id).get("alert"))

        return LiveService(
            self.settings, self.scans, self.pipeline, self.actions, self.evidence, self.audit,
            bands=self.ages.bands, chat_alert=chat_alert, claims=StreamClaims(self.db),
        )  # fmt: skip

    @cached_property
    def writes(self) -> GroupCommit:
        from safehold.store.groupcommit import GroupCommit

        st = self.settings
        return GroupCommit(
            self.db, interval_ms=st.group_commit_ms, max_batch=st.group_commit_max_batch,
            max_queue=st.group_commit_max_queue, writers=st.group_commit_writers,
            max_wait_ms=st.group_commit_max_wait_ms,
        )  # fmt: skip

    @cached_property
    def search(self) -> SearchService:
        from safehold.rules.search import SearchService

        return SearchService(self.db, self.terms)

    @cached_property
    def posts(self) -> PostService:
        from safehold.rules.posts import PostService

        return PostService(self.terms, self.scans, self.pipeline, self.settings)

    @cached_property
    def feedback(self) -> FeedbackService:
        from safehold.background import DELIVER_FEEDBACK
        from safehold.sharing.feedback import FeedbackService

        # Late-bound: the configured exchanges (ExchangeService) give each one's client, credentials opened.
        feedback = FeedbackService(self.db, self.audit, self.settings, lambda name: self.exchanges.adapter(name))
        feedback.on_queue(lambda: self.tasks.kick(DELIVER_FEEDBACK))
        return feedback

    @cached_property
    def contributions(self) -> ContributionService:
        from safehold.sharing.contribution import ContributionService

        return ContributionService(self.db, self.audit, self.vault, lambda name: self.exchanges.adapter(name))

    @cached_property
    def exchanges(self) -> ExchangeService:
        from safehold.sharing.service import ExchangeService

        return ExchangeService(self.db, self.audit, self.banks, self.sealer, self.settings)

    @cached_property
    def peers(self) -> PeerService:
        from safehold.sharing.peers import PeerService

        return PeerService(self.db, self.audit, self.sealer, self.banks, self.apikeys)

    @property
    def index_loaded(self) -> bool:
        """Whether :meth:`load_index` has run (readiness: a server answers scans only with its index)."""
        return self._index_loaded

    def load_index(self) -> None:
        """Load the matching index (snapshot or rebuild) once; commands that never match skip it."""
        if not self._index_loaded:
            self.index.load()
            self._index_loaded = True

    def maintain_once(self) -> None:
        """One round of upkeep here and now (tests, commands): catch up with other processes' changes, persist
        counters, reload changed term lists, re-rank open cases as they age, prune, purge, follow up, snapshot the
        index when it has moved on enough. Failures raise."""
        from safehold.background import UPKEEP

        for name in UPKEEP:
            self.tasks.run_now(name)

    def start_background(self) -> None:
        """Start this process's background work (``SAFEHOLD_TASKS``: all of it here, or only the per-process part
        with the rest on Celery workers)."""
        # Build the text detectors before serving: the search routes run on the event loop, and the first query
        # must not wait for the term lists to be read and compiled.
        self.terms.sync()
        self.tasks.start()

    def close(self) -> None:
        """Stop the background work and persist what is in memory, of the services built (building one now would
        only find nothing to do)."""
        built = self.__dict__
        if "live" in built:  # no more pulled frames
            self.live.close()
        if "writes" in built:  # answer what waits to be written before anything else stops
            self.writes.close()
        # One of several API processes writes the shared snapshot only if it holds the shared-work lock.
        snapshots = "tasks" not in built or self.tasks.leads
        if "tasks" in built:
            self.tasks.stop()
        if "dispatcher" in built:
            self.dispatcher.close()
        try:
            for counted in ("scans", "search"):
                if counted in built:
                    built[counted].flush_counts()
            if "seen" in built:
                self.seen.flush()
            if "rules" in built:
                self.rules.flush()  # the shadow hits not yet written
            if "index" in built and self.index.changes_since_snapshot and snapshots:
                self.index.save_snapshot()
        finally:
            self.db.dispose()


#: Every service, in the order ``Services`` builds them when not lazy.
_SERVICES = tuple(name for name, attr in vars(Services).items() if isinstance(attr, cached_property))


def load_classifiers(settings: Settings, names: list[str] | None = None, **budgets) -> Classifiers:
    """The classifiers ``names`` (default: ``SAFEHOLD_CLASSIFIERS``) with the settings' threads and a scan's
    decode bounds (pixels, JPEG structure, video length, frame size and time); ``budgets`` are the process-wide
    bounds on work in flight (``budget``, ``video_slots``), which the server shares with its scans."""
    from safehold.classifiers.registry import load

    st = settings
    return load(
        st.classifiers if names is None else names,
        threads=st.classifier_threads,
        max_pixels=st.max_image_pixels,
        max_jpeg_scans=st.jpeg_max_scans,
        max_jpeg_segments=st.jpeg_max_segments,
        video_frames=st.classifier_video_frames,
        video_max_seconds=st.video_max_seconds,
        video_max_pixels=st.video_max_pixels,
        video_timeout=st.video_hash_timeout,
        max_bytes=st.max_upload_bytes,
        **budgets,
    )
