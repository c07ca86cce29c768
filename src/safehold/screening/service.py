"""External classification services as a service: their configuration, and the queue of images they are sent
off the hash-matching path.

**Configuration.** Each configured service has a name, a type (:mod:`safehold.screening.registry`), its own
settings, credentials sealed with the instance key (its name as associated data; never shown back: the status
says only ``has_credentials``), an optional threshold override, counters and its last error.

**The queue.** The pipeline offers each image the scan accepted that no bank matched and no allow bank vouched
for (:meth:`ScreeningQueue.offer`); one job per enabled service is stored with the image sealed in its row.
Offering never blocks and never fails the scan: with no service enabled nothing is stored; beyond
``SAFEHOLD_SCREENING_QUEUE_MAX_JOBS`` jobs or ``…_MAX_BYTES`` bytes waiting, or for an image with no subject (no
content or account id: no case could be opened), the image is skipped and counted on each service; a failing
store is logged and counted the same way.

**The work.** The ``screening.run`` task (:meth:`ScreeningQueue.run_once`) takes due jobs under a lease
(at-least-once: a crashed worker's job is taken again when its lease lapses), one call per service slot (its
``requests_per_minute``, or the ``Retry-After`` it asked for), and calls the service with its timeout. A retryable
failure (network, 5xx, 429) puts the job off with back-off (at least what the service asked for); a
non-retryable one (credentials refused, media refused, a protocol violation) or the last attempt fails the job and
shows on the service's status. Scores at or above the service's threshold are judged by the pipeline's own rule
(:meth:`Pipeline.judge <safehold.pipeline.service.Pipeline.judge>` with :func:`service_policy`, and the age
signal the submission had, kept with the job) and go to it as ``classifier`` signals (signal type: the service's
configured name): a case for human review, never an automatic action. Once
done or failed the job's media is deleted; the pipeline keeps it in the vault only when a case holds it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from safehold.audit import AuditService
from safehold.backoff import retry_delay
from safehold.cases.detection import Detection
from safehold.classifiers.base import Classification, Score
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.outbound.settings import check_name, credentials_to_seal, seal, settings_of, unseal
from safehold.pipeline.classifier_policy import AGE_REASONS, DEFAULT_CATEGORY, Policy
from safehold.pipeline.service import Pipeline, Submission
from safehold.screening import registry
from safehold.screening.base import Media, ScreeningError, ScreeningService
from safehold.signals.media import sniff_format
from safehold.store.db import Database
from safehold.store.models import ScreeningJob, ScreeningServiceRow, utcnow
from safehold.store.sealing import Sealer

log = logging.getLogger(__name__)

#: Labels legal for adults: a service's hit on one opens a case only with an age signal (the submission's reasons
#: or the uploader's band), as the local classifier's do (docs/classifiers.md, "Classifier policy"); every other
#: label a service gives (``csam``, C3P's harmful-abusive material, …) opens one alone.
ADULT_LEGAL_LABELS = frozenset({"explicit"})
#: Associated data binding a job's sealed media to the screening queue.
MEDIA_AAD = b"safehold.screening.job"
#: Jobs looked at per take (the first free one due is taken).
TAKE_WINDOW = 20
#: Finished jobs (media already deleted) are forgotten after this.
KEEP_FINISHED = dt.timedelta(days=7)
#: Longest error message stored.
MAX_ERROR_CHARS = 1000


class ScreeningQueue:
    def __init__(
        self,
        db: Database,
        audit: AuditService,
        sealer: Sealer,
        settings: Settings,
        pipeline: Callable[[], Pipeline],
    ):
        self.db, self.audit, self.sealer, self.settings = db, audit, sealer, settings
        self._pipeline = pipeline  # late-bound: the pipeline holds this queue too

    # ------------------------------------------------------------------------------------ configuration

    def create(
        self,
        name: str,
        type: str,
        settings: dict | None = None,
        credentials: dict | None = None,
        *,
        threshold: float | None = None,
        enabled: bool = True,
        actor: str | None = None,
    ) -> dict:
        """Configure a new service (``screening.exists``, ``screening.invalid_*``, ``screening.unknown_type``)."""
        check_name(name, "screening.invalid_name", "A screening service name")
        cls = registry.get(type)
        own = _settings(cls, settings or {})
        sealed = seal(self.sealer, name, _credentials(cls, credentials))
        with self.db.session() as s:
            if s.scalar(select(ScreeningServiceRow.id).where(ScreeningServiceRow.name == name)) is not None:
                raise Conflict("screening.exists", f"A screening service named {name!r} already exists.")
            s.add(
                ScreeningServiceRow(
                    name=name, type=cls.type, enabled=enabled, settings=own, credentials=sealed,
                    threshold=_threshold(threshold), created_by=actor, sent_total=0, hits_total=0, failed_total=0,
                    skipped_total=0,
                )
            )  # fmt: skip
            detail = {"type": cls.type, "settings": own, "has_credentials": sealed is not None, "enabled": enabled}
            self.audit.record(s, actor, "screening.create", f"screening:{name}", detail)
        return self.get(name)

    def list(self) -> list[dict]:
        with self.db.session() as s:
            rows = s.scalars(select(ScreeningServiceRow).order_by(ScreeningServiceRow.name)).all()
            waiting = _waiting_by_service(s)
            return [_status(row, waiting.get(row.id, (0, 0))) for row in rows]

    def get(self, name: str) -> dict:
        """The service's configuration and status (never its credentials)."""
        with self.db.session() as s:
            row = _row(s, name)
            return _status(row, _waiting_by_service(s, row.id).get(row.id, (0, 0)))

    def update(
        self,
        name: str,
        *,
        settings: dict | None = None,
        credentials: dict | None = None,
        threshold: float | None = None,
        clear_threshold: bool = False,
        enabled: bool | None = None,
        actor: str | None = None,
    ) -> dict:
        """Change what is given: ``settings`` and ``credentials`` are replaced whole; ``clear_threshold`` goes
        back to the type's default threshold."""
        with self.db.session() as s:
            row = _row(s, name)
            cls = registry.get(row.type)
            changed: list[str] = []
            if settings is not None:
                row.settings = _settings(cls, settings)
                changed.append("settings")
            if credentials is not None:
                row.credentials = seal(self.sealer, name, _credentials(cls, credentials))
                changed.append("credentials")
            if threshold is not None or clear_threshold:
                row.threshold = None if clear_threshold else _threshold(threshold)
                changed.append("threshold")
            if enabled is not None and enabled != row.enabled:
                row.enabled = enabled
                changed.append("enabled")
            if changed:
                detail: dict[str, Any] = {"changed": changed, "enabled": row.enabled, "threshold": row.threshold}
                if "settings" in changed:
                    detail["settings"] = row.settings
                self.audit.record(s, actor, "screening.update", f"screening:{name}", detail)
        return self.get(name)

    def enable(self, name: str, actor: str | None = None) -> dict:
        return self.update(name, enabled=True, actor=actor)

    def disable(self, name: str, actor: str | None = None) -> dict:
        """No more images are queued for it and its queued jobs wait (a call running now finishes)."""
        return self.update(name, enabled=False, actor=actor)

    def delete(self, name: str, actor: str | None = None) -> None:
        """Forget the service and its jobs (their media with them); cases it opened stay."""
        with self.db.session() as s:
            row = _row(s, name)
            s.query(ScreeningJob).filter(ScreeningJob.service_id == row.id).delete(synchronize_session=False)
            s.delete(row)
            self.audit.record(s, actor, "screening.delete", f"screening:{name}", {"type": row.type})

    def adapter(self, name: str) -> tuple[ScreeningService, float]:
        """The service's client, settings and opened credentials, and its threshold."""
        with self.db.session() as s:
            row = _row(s, name)
            type_name, own, sealed, threshold = row.type, dict(row.settings or {}), row.credentials, row.threshold
        cls = registry.get(type_name)
        opened = unseal(self.sealer, name, sealed) if sealed is not None else {}
        service = cls(cls.settings_model.model_validate(own), cls.credentials_model.model_validate(opened))
        return service, cls.threshold if threshold is None else threshold

    def test(self, name: str, actor: str | None = None) -> dict:
        """A cheap call proving the service's URL and credentials work (``ScreeningService.check``); a failure is
        the service's error (``screening.auth``, ``screening.unavailable``…), shown and not stored."""
        service, _ = self.adapter(name)
        answer = service.check()
        with self.db.session() as s:
            self.audit.record(s, actor, "screening.test", f"screening:{name}", {"checked": bool(answer.get("checked"))})
        return {"service": name, **answer}

    # ------------------------------------------------------------------------------------------ queueing

    def offer(
        self,
        media: bytes,
        *,
        filename: str | None,
        content_id: str | None,
        account_id: str | None,
        hashes: dict[str, str],
        age_reasons: Sequence[str] = (),
        age_context: dict | None = None,
    ) -> None:
        """Queue ``media`` for each enabled service, or count it skipped. Never raises: the scan that offered it
        has already answered what matters (its matches). The submission's age signal is kept with each job, for
        the pipeline's rule when the result comes back (:meth:`_judge`)."""
        age = {"reasons": list(age_reasons), "context": dict(age_context or {})} if age_reasons else None
        try:
            self._offer(media, filename, content_id, account_id, hashes, age)
        except Exception:  # a failing store must not fail the scan: logged, and the image is not screened
            log.exception("screening: an image could not be queued; it is not screened")

    def _offer(
        self,
        media: bytes,
        filename: str | None,
        content_id: str | None,
        account_id: str | None,
        hashes: dict,
        age: dict | None,
    ) -> None:
        with self.db.session() as s:
            services = s.scalars(select(ScreeningServiceRow.id).where(ScreeningServiceRow.enabled.is_(True))).all()
            if not services:
                return
            jobs, size = s.execute(
                select(func.count(ScreeningJob.id), func.coalesce(func.sum(ScreeningJob.media_bytes), 0)).where(
                    ScreeningJob.status == "queued"
                )
            ).one()
            st = self.settings
            full = jobs + len(services) > st.screening_queue_max_jobs
            full = full or size + len(media) * len(services) > st.screening_queue_max_bytes
            if hashes.get("md5"):  # the same image of the same subject again (a retried scan): queued once
                again = set(
                    s.scalars(
                        select(ScreeningJob.service_id).where(
                            ScreeningJob.md5 == hashes["md5"],
                            ScreeningJob.content_id == content_id,
                            ScreeningJob.account_id == account_id,
                        )
                    ).all()
                )
                services = [sid for sid in services if sid not in again]
                if not services:
                    return
            if full or not (content_id or account_id):
                s.execute(
                    update(ScreeningServiceRow)
                    .where(ScreeningServiceRow.id.in_(services))
                    .values(skipped_total=ScreeningServiceRow.skipped_total + 1)
                )
                return
            sealed = self.sealer.seal(media, MEDIA_AAD)
            content_type = f"image/{sniff_format(media, filename) or 'octet-stream'}"
            for service_id in services:
                s.add(
                    ScreeningJob(
                        service_id=service_id, content_id=content_id, account_id=account_id,
                        filename=(filename or "")[:255] or None, content_type=content_type[:64],
                        pdq=hashes.get("pdq"), md5=hashes.get("md5"), age=age, media=sealed, media_bytes=len(media),
                        status="queued", attempts=0, next_at=utcnow(),
                    )
                )  # fmt: skip

    def queue(self) -> dict:
        """The queue's state: jobs and bytes waiting, jobs failed, and the bounds."""
        with self.db.session() as s:
            counts = dict(s.execute(select(ScreeningJob.status, func.count()).group_by(ScreeningJob.status)).all())
            size = s.scalar(
                select(func.coalesce(func.sum(ScreeningJob.media_bytes), 0)).where(ScreeningJob.status == "queued")
            )
        st = self.settings
        return {
            "queued": counts.get("queued", 0),
            "queued_bytes": int(size or 0),
            "done": counts.get("done", 0),
            "failed": counts.get("failed", 0),
            "max_jobs": st.screening_queue_max_jobs,
            "max_bytes": st.screening_queue_max_bytes,
        }

    # ------------------------------------------------------------------------------------------ working

    def run_once(self, limit: int = 8) -> int:
        """Work at most ``limit`` due jobs; answers how many were worked. One failing service never stops the
        others (its error is on its row and its job's)."""
        worked: list[int] = []
        for _ in range(limit):
            taken = self._take(exclude=worked)  # a job put off in this round waits for the next one
            if taken is None:
                break
            self._work(*taken)
            worked.append(taken[0])
        if not worked:
            self._forget_finished()
        return len(worked)

    def _take(self, exclude: Sequence[int] = ()) -> tuple[int, str] | None:
        """A due job under a new lease, with the service's call slot taken: (job id, lease owner)."""
        now = utcnow()
        with self.db.session() as s:
            due = s.execute(
                select(ScreeningJob.id, ScreeningJob.service_id)
                .join(ScreeningServiceRow, ScreeningServiceRow.id == ScreeningJob.service_id)
                .where(
                    ScreeningJob.status == "queued",
                    ScreeningJob.next_at <= now,
                    ScreeningJob.id.not_in(exclude),
                    or_(ScreeningJob.lease_until.is_(None), ScreeningJob.lease_until < now),
                    ScreeningServiceRow.enabled.is_(True),
                    or_(ScreeningServiceRow.next_call_at.is_(None), ScreeningServiceRow.next_call_at <= now),
                )
                .order_by(ScreeningJob.next_at, ScreeningJob.id)
                .limit(TAKE_WINDOW)
            ).all()
        tried: set[int] = set()
        for job_id, service_id in due:
            if service_id in tried:
                continue
            tried.add(service_id)
            owner = str(uuid.uuid4())
            with self.db.session() as s:
                if not self._slot(s, service_id, now):
                    continue
                leased = s.execute(
                    update(ScreeningJob)
                    .where(
                        ScreeningJob.id == job_id,
                        ScreeningJob.status == "queued",
                        or_(ScreeningJob.lease_until.is_(None), ScreeningJob.lease_until < now),
                    )
                    .values(
                        lease_owner=owner,
                        lease_until=now + dt.timedelta(seconds=self.settings.screening_lease_seconds),
                        attempts=ScreeningJob.attempts + 1,
                    )
                    .execution_options(synchronize_session=False)
                ).rowcount
            if leased:
                return job_id, owner
        return None

    def _slot(self, s: Session, service_id: int, now: dt.datetime) -> bool:
        """Take the service's next call slot (its rate limit, shared by every process through its row)."""
        row = s.get(ScreeningServiceRow, service_id)
        per_minute = max(1, int((row.settings or {}).get("requests_per_minute") or 60))
        return bool(
            s.execute(
                update(ScreeningServiceRow)
                .where(
                    ScreeningServiceRow.id == service_id,
                    or_(ScreeningServiceRow.next_call_at.is_(None), ScreeningServiceRow.next_call_at <= now),
                )
                .values(next_call_at=now + dt.timedelta(seconds=60.0 / per_minute))
                .execution_options(synchronize_session=False)
            ).rowcount
        )

    def _work(self, job_id: int, owner: str) -> None:
        with self.db.session() as s:
            job = s.get(ScreeningJob, job_id)
            if job is None or job.lease_owner != owner or job.media is None:
                return  # the lease lapsed and another worker took the job (or it is gone)
            name = s.get(ScreeningServiceRow, job.service_id).name
            media = Media(
                data=self.sealer.open(job.media, MEDIA_AAD),
                content_type=job.content_type,
                pdq=job.pdq,
                md5=job.md5,
            )
            subject = (job.content_id, job.account_id, job.filename, job.attempts, dict(job.age or {}))
        try:
            service, threshold = self.adapter(name)
            scores = service.classify(media)
        except ScreeningError as exc:
            self._failed(job_id, owner, name, exc, subject[3])
            return
        except Exception as exc:  # a plug-in's bug: the job fails, the service shows it
            log.exception("screening %s: the call failed", name)
            self._failed(job_id, owner, name, ScreeningError("screening.failed", _text(exc), retryable=False), 0)
            return
        self._done(job_id, owner, name, service, threshold, scores, media.data, subject)

    def _done(
        self,
        job_id: int,
        owner: str,
        name: str,
        service: ScreeningService,
        threshold: float,
        scores: list[Score],
        data: bytes,
        subject: tuple,
    ) -> None:
        """Hand the hits to the pipeline (idempotent per job: a job worked twice opens its case once), then close
        the job and delete its media."""
        content_id, account_id, filename, _, age = subject
        judged = Classification(classifier=name, version=service.type, threshold=threshold, scores=tuple(scores))
        sub = Submission(
            Detection(source="classifier", content_id=content_id, account_id=account_id),
            media=data, filename=filename, opens=True, source="classifier",
            age_reasons=[r for r in age.get("reasons", ()) if r in AGE_REASONS], age_context=age.get("context") or {},
        )  # fmt: skip
        pipeline = self._pipeline()
        hits = pipeline.judge(sub, [judged], service_policy).signals
        case_id = None
        if hits:
            sub.detection.signals = hits
            answer = pipeline.submit(
                sub,
                key=f"screening:{job_id}",
                digest=hashlib.sha256(f"screening:{job_id}".encode()).hexdigest(),
                actor=f"screening:{name}",
                answer=lambda ref: {"case_id": ref.id if ref else None},
            )
            case_id = (answer or {}).get("case_id")
        result = {"scores": [{"label": x.label, "score": x.score, "detail": x.detail} for x in scores],
                  "threshold": threshold, "hits": len(hits)}  # fmt: skip
        now = utcnow()
        with self.db.session() as s:
            closed = s.execute(
                update(ScreeningJob)
                .where(ScreeningJob.id == job_id, ScreeningJob.lease_owner == owner)
                .values(status="done", result=result, case_id=case_id, media=None, lease_until=None,
                        finished_at=now, last_error_code=None, last_error=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # fmt: skip
            if closed:
                s.execute(
                    update(ScreeningServiceRow)
                    .where(ScreeningServiceRow.name == name)
                    .values(
                        sent_total=ScreeningServiceRow.sent_total + 1,
                        hits_total=ScreeningServiceRow.hits_total + (1 if hits else 0),
                        last_ok_at=now,
                    )
                )

    def _failed(self, job_id: int, owner: str, name: str, exc: ScreeningError, attempts: int) -> None:
        """Put the job off (retryable, attempts left) or fail it; the service's row shows the error either way."""
        st = self.settings
        now = utcnow()
        retry = exc.retryable and attempts < st.screening_max_attempts
        message = _text(exc)
        values: dict[str, Any] = {"lease_until": None, "last_error_code": exc.code, "last_error": message}
        if retry:
            wait = retry_delay(attempts, st.screening_backoff_seconds, st.screening_backoff_max_seconds)
            if exc.retry_after:
                wait = max(wait, dt.timedelta(seconds=exc.retry_after))
            values["next_at"] = now + wait
        else:
            values.update(status="failed", media=None, finished_at=now)
        with self.db.session() as s:
            changed = s.execute(
                update(ScreeningJob)
                .where(ScreeningJob.id == job_id, ScreeningJob.lease_owner == owner)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not changed:
                return
            service: dict[str, Any] = {"last_error_code": exc.code, "last_error": message, "last_error_at": now}
            if not retry:
                service["failed_total"] = ScreeningServiceRow.failed_total + 1
            if exc.retry_after:  # the service asked every caller to wait, not only this job
                service["next_call_at"] = now + dt.timedelta(seconds=exc.retry_after)
            s.execute(update(ScreeningServiceRow).where(ScreeningServiceRow.name == name).values(**service))
        log.warning("screening %s: job %s %s: %s [%s]", name, job_id, "put off" if retry else "failed",
                    message, exc.code)  # fmt: skip

    def _forget_finished(self) -> None:
        with self.db.session() as s:
            s.query(ScreeningJob).filter(
                ScreeningJob.status.in_(("done", "failed")), ScreeningJob.finished_at < utcnow() - KEEP_FINISHED
            ).delete(synchronize_session=False)


def service_policy(judged: Classification, hit: Score) -> Policy:
    """A screening service's policy for one label, for :meth:`Pipeline.judge`: the service's threshold; a label
    legal for adults (:data:`ADULT_LEGAL_LABELS`: Safer's pornography class) needs an age signal, and without one
    is only noted; a child-abuse label (``csam``, C3P's harmful-abusive material, …) opens a case alone. Never an
    automatic action: a service's guess goes to a person."""
    needs = hit.label in ADULT_LEGAL_LABELS
    return Policy(
        classifier=judged.classifier,
        threshold=judged.threshold,
        needs_age_signal=needs,
        alone="ignore" if needs else "case",
        auto_action=False,
        category=DEFAULT_CATEGORY,
    )


def _text(exc: Exception) -> str:
    return (exc.message if isinstance(exc, SafeholdError) else f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]


def _row(s: Session, name: str) -> ScreeningServiceRow:
    row = s.scalars(select(ScreeningServiceRow).where(ScreeningServiceRow.name == name)).first()
    if row is None:
        raise NotFound("screening.not_found", f"No screening service named {name!r}.")
    return row


def _settings(cls: type[ScreeningService], data: dict) -> dict:
    return settings_of(cls.settings_model, data, "screening.invalid_settings", f"{cls.type} settings")


def _credentials(cls: type[ScreeningService], data: dict | None) -> dict | None:
    """The credentials to seal (validated by the type's model), or None when it has none to take."""
    return credentials_to_seal(
        cls.credentials_model, data or {}, "screening.invalid_credentials", f"{cls.type} credentials"
    )


def _threshold(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        raise SafeholdError("screening.invalid_threshold", "A threshold is a number above 0 and at most 1.")
    return float(value)


def _waiting_by_service(s: Session, service_id: int | None = None) -> dict[int, tuple[int, int]]:
    """Jobs waiting and jobs failed, per service."""
    query = select(
        ScreeningJob.service_id,
        func.count().filter(ScreeningJob.status == "queued"),
        func.count().filter(ScreeningJob.status == "failed"),
    ).group_by(ScreeningJob.service_id)
    if service_id is not None:
        query = query.where(and_(ScreeningJob.service_id == service_id))
    return {sid: (queued, failed) for sid, queued, failed in s.execute(query).all()}


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat() if at else None


def _status(row: ScreeningServiceRow, waiting: tuple[int, int]) -> dict:
    try:
        cls: type[ScreeningService] | None = registry.get(row.type)
    except SafeholdError:  # its plug-in is gone: the status still shows
        cls = None
    return {
        "name": row.name,
        "type": row.type,
        "description": cls.description if cls else "",
        "enabled": row.enabled,
        "settings": dict(row.settings or {}),
        "has_credentials": row.credentials is not None,
        "threshold": row.threshold if row.threshold is not None else (cls.threshold if cls else None),
        "threshold_overridden": row.threshold is not None,
        "labels": list(cls.labels) if cls else [],
        "queue": {"queued": waiting[0], "failed": waiting[1]},
        "totals": {
            "sent": row.sent_total,
            "hits": row.hits_total,
            "failed": row.failed_total,
            "skipped": row.skipped_total,
        },
        "last_ok_at": _iso(row.last_ok_at),
        "last_error": (
            {"code": row.last_error_code, "message": row.last_error, "at": _iso(row.last_error_at)}
            if row.last_error_code
            else None
        ),
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
    }


def types() -> list[dict]:
    """Every service type with its labels, default threshold and the JSON Schema of its settings and credentials
    (the console's and the API's add forms)."""
    out = []
    for type_name in registry.names():
        try:
            cls = registry.get(type_name)
        except SafeholdError:
            continue
        out.append(
            {
                "type": cls.type,
                "description": cls.description,
                "labels": list(cls.labels),
                "threshold": cls.threshold,
                "settings": cls.settings_model.model_json_schema(),
                "credentials": cls.credentials_model.model_json_schema(),
            }
        )
    return out
