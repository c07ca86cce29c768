"""Nudity protection for minors (Principle 7): what the platform does with an image in a message, by the ages of
the people on each side.

The platform asks before it shows an image (stage ``deliver``: a message arriving for ``recipient``) or while
someone composes one (stage ``send``: ``sender`` is about to send it). The answer is a decision with the prompts
to show (:mod:`safehold.safety.prompts`):

=====================================  ============================================================================
who                                    decision
=====================================  ============================================================================
deliver, recipient a minor             the image scored with the policy's classifier; at or over the band's
                                       threshold: ``blur`` (the child chooses whether to view it; prompts
                                       ``media.blurred`` + ``help.sextortion``) or ``block`` (``media.blocked``),
                                       by band; otherwise ``allow``
send, sender a minor                   explicit: ``warn`` before sending (``send.warning`` + ``help.sextortion``),
                                       or ``block`` if the operator chooses; otherwise ``allow``
adult to adult (and unknown)           ``allow`` without classifying: no work and no scoring for adults' messages,
                                       unless the operator's policy gives their band another action
=====================================  ============================================================================

An explicit image with a minor on either side is also a child-safety event, at either stage: sent by a minor
(reason ``uploader_minor``: possibly self-generated imagery of a child, to anyone) or to a minor (``recipient_minor``:
a child exposed to sexual material). It opens a case for human review through the pipeline's own rule
(:meth:`Pipeline.judge <safehold.pipeline.service.Pipeline.judge>`: the classifier's policy — its threshold, not the
media policy's — and the category by the reasons, ``csam`` or ``grooming``), once per message, whichever stage saw
it first; only then is the image kept (in the encrypted vault, as for every case). The answer to the platform does
not change with the case: at ``send`` an adult's image to a minor is ``allow`` by the adult's send rule (the
child's protection is the ``deliver`` check; the sender is not told a case opened). The policy — which classifier
and label mean "explicit", the action and threshold per band — is the operator's (:class:`MediaPolicy`, stored as
an app setting and cached like the prompts): its thresholds decide what is blurred, blocked or warned about, a UX
choice that never changes what reviewers are sent.

The defaults follow the public designs of Apple's Communication Safety (blurred, the child may choose to view
after a warning with ways to get help, and warned before sending) and Instagram's nudity protection in direct
messages (blurred behind a warning for teens, with sextortion resources): ``blur`` for 13-15 and 16-17, so a
teenager keeps the choice and gets help rather than a silent filter; ``block`` for under-13s, for whom a choice
to view sexual images is not appropriate and Apple's default for child accounts is the most restrictive. The
threshold of each band defaults to the classifier's own.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from safehold.agebands import BANDS, is_minor
from safehold.audit import AuditService
from safehold.cases.detection import CaseRef, Detection
from safehold.classifiers.base import Classification
from safehold.classifiers.registry import Classifiers
from safehold.errors import SafeholdError, validated
from safehold.pipeline.service import Pipeline, Submission
from safehold.safety.ages import AgeBook, account_problem
from safehold.safety.prompts import Prompts
from safehold.signals.image import prepare
from safehold.store.db import Database
from safehold.store.models import AppSetting, iso

SETTING_KEY = "safety.media_policy"
STAGES = ("deliver", "send")
Band = Literal["under13", "13-15", "16-17", "adult", "unknown"]
#: The prompts shown with each decision (the first names what happened, the second where to get help).
PROMPTS = {
    ("deliver", "blur"): ("media.blurred", "help.sextortion"),
    ("deliver", "block"): ("media.blocked",),
    ("send", "warn"): ("send.warning", "help.sextortion"),
    ("send", "block"): ("send.warning", "help.sextortion"),
}


class DeliverRule(BaseModel):
    """What happens to an image delivered to an account of one band."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["allow", "blur", "block"]
    threshold: float | None = Field(
        None, gt=0, le=1, description="Explicit at or over this score; null: the classifier's own threshold."
    )


class SendRule(BaseModel):
    """What happens when an account of one band is about to send an image."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["allow", "warn", "block"]
    threshold: float | None = Field(
        None, gt=0, le=1, description="Explicit at or over this score; null: the classifier's own threshold."
    )


def _deliver_defaults() -> dict[str, DeliverRule]:
    return {
        "under13": DeliverRule(action="block"),
        "13-15": DeliverRule(action="blur"),
        "16-17": DeliverRule(action="blur"),
        "adult": DeliverRule(action="allow"),
        "unknown": DeliverRule(action="allow"),
    }


def _send_defaults() -> dict[str, SendRule]:
    return {band: SendRule(action="warn" if is_minor(band) else "allow") for band in BANDS}


class MediaPolicy(BaseModel):
    """The operator's media policy (``GET``/``PUT /v1/safety/media-policy``, ``safehold media policy``)."""

    model_config = ConfigDict(extra="forbid")
    classifier: str = Field(
        "opennsfw", pattern=r"^[a-z][a-z0-9_]{0,63}$", description="The classifier that scores images."
    )
    label: str = Field("explicit", min_length=1, max_length=64, description="Its label that means explicit.")
    deliver: dict[Band, DeliverRule] = Field(default_factory=_deliver_defaults)
    send: dict[Band, SendRule] = Field(default_factory=_send_defaults)
    open_cases: bool = Field(
        True, description="An explicit image sent by or to a minor opens a case for review (the classifier's policy)."
    )

    def deliver_rule(self, band: str) -> DeliverRule:
        return self.deliver.get(band) or _deliver_defaults()[band]

    def send_rule(self, band: str) -> SendRule:
        return self.send.get(band) or _send_defaults()[band]


def _invalid(message: str) -> SafeholdError:
    return SafeholdError("media.invalid_check", message, status=422)


def _account(value: str | None, name: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise _invalid(f"{name} is required")
        return None
    problem = account_problem(value, name)  # the one rule of every door (safehold.safety.ages)
    if problem is not None:
        raise _invalid(problem)
    return value


class MediaCheck:
    """The media check of one process: the policy (cached), the age book, the classifiers and the pipeline."""

    def __init__(
        self,
        db: Database,
        audit: AuditService,
        ages: AgeBook,
        classifiers: Classifiers,
        pipeline: Pipeline,
        prompts: Prompts,
        *,
        reload_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.db = db
        self.audit = audit
        self.ages = ages
        self.classifiers = classifiers
        self.pipeline = pipeline
        self.prompts = prompts
        self.reload_seconds = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._policy: tuple[float, MediaPolicy] | None = None

    # ------------------------------------------------------------------ policy

    def policy(self) -> MediaPolicy:
        """The operator's policy (or the defaults), re-read at most every ``reload_seconds``. A stored policy
        that no longer validates is ignored for the defaults rather than failing every check."""
        cached = self._policy
        if cached is not None and self._clock() - cached[0] < self.reload_seconds:
            return cached[1]
        with self._lock:
            with self.db.session() as s:
                row = s.get(AppSetting, SETTING_KEY)
                stored = dict(row.value) if row is not None and row.value else {}
            try:
                policy = MediaPolicy.model_validate(stored)
            except ValueError:
                policy = MediaPolicy()
            self._policy = (self._clock(), policy)
            return policy

    def policy_info(self) -> dict:
        """The policy as JSON, with when and by whom it was last changed (``None``: the defaults)."""
        with self.db.session() as s:
            row = s.get(AppSetting, SETTING_KEY)
            who, when = (row.updated_by, iso(row.updated_at)) if row is not None else (None, None)
        return {"policy": self.policy().model_dump(mode="json"), "updated_by": who, "updated_at": when}

    def set_policy(self, body: object, actor: str) -> dict:
        """Replace the policy (a missing field takes its default); ``request.invalid`` (422) for a bad one,
        ``media.invalid_policy`` for a label the named classifier (when enabled here) does not emit. Audited."""
        policy = validated(MediaPolicy, body, "the media policy")
        c = self._enabled(policy.classifier)
        if c is not None and policy.label not in c.labels:
            raise SafeholdError(
                "media.invalid_policy",
                f"Classifier {policy.classifier} has no label {policy.label!r} (it has {', '.join(c.labels)}).",
                status=422,
            )
        value = policy.model_dump(mode="json")
        with self.db.session() as s:
            row = s.get(AppSetting, SETTING_KEY, with_for_update=True)
            old = dict(row.value) if row is not None else None
            if row is None:
                s.add(AppSetting(key=SETTING_KEY, value=value, updated_by=actor))
            else:
                row.value, row.updated_by = value, actor
            s.flush()
            self.audit.record(s, actor, "settings.update", f"setting:{SETTING_KEY}", {"old": old, "new": value})
        self._policy = None
        return self.policy_info()

    def _enabled(self, name: str):
        return next((c for c in self.classifiers.enabled if c.name == name), None)

    # ------------------------------------------------------------------ the check

    def check(
        self,
        data: bytes,
        *,
        sender: str,
        recipient: str | None = None,
        stage: str = "deliver",
        locale: str | None = "en",
        content_id: str | None = None,
        actor: str,
        scope: str,
    ) -> dict:
        """The decision for one image (see the module docs). ``scope`` names the caller (its key prefix) for the
        idempotency of the case an image sent by or to a minor opens: the same image from the same sender to the
        same recipient is one event however often, and at whichever stage, it is checked."""
        if stage not in STAGES:
            raise _invalid(f"stage must be one of {', '.join(STAGES)}")
        sender = _account(sender, "sender", required=True)
        recipient = _account(recipient, "recipient", required=stage == "deliver")
        content_id = _account(content_id, "content_id", required=False)
        if not data:
            raise SafeholdError("media.empty", "The uploaded file is empty.")
        policy = self.policy()
        sender_age = self.ages.resolved(sender)
        sender_band = sender_age.band  # protective: a minor about to send is warned
        recipient_band = self.ages.band(recipient) if recipient else None
        rule = policy.deliver_rule(recipient_band) if stage == "deliver" else policy.send_rule(sender_band)
        reasons = ["recipient_minor"] if is_minor(recipient_band) else []
        reportable = policy.open_cases and (is_minor(sender_band) or bool(reasons))  # the pipeline adds uploader_minor
        answer = {
            "decision": "allow",
            "stage": stage,
            "classified": False,
            "score": None,
            "classifier": policy.classifier,
            "label": policy.label,
            "threshold": None,
            "sender_band": sender_band,
            "recipient_band": recipient_band,
            "prompts": [],
            "case_id": None,
        }
        if rule.action == "allow" and not reportable:
            return answer  # adults' messages: nothing decoded, nothing scored
        classified = self._classify(data, policy)
        score = classified.scores[0].score
        threshold = rule.threshold if rule.threshold is not None else classified.threshold
        answer.update(classified=True, score=score, threshold=threshold)
        if score >= threshold and rule.action != "allow":
            answer["decision"] = rule.action
            answer["prompts"] = [self.prompts.get(key, locale) for key in PROMPTS[(stage, rule.action)]]
        if reportable:
            context = {"stage": stage, "recipient": recipient, "recipient_band": recipient_band}
            if sender_age.age_conflict:  # an adult claiming to be younger: the reviewer sees both bands
                context.update(sender_band_as_sender=sender_age.sender_band, age_conflict=True)
            detection = Detection(source="classifier", content_id=content_id, account_id=sender, media_type="image")
            sub = Submission(detection, media=data, source="classifier", opens=True, age_reasons=reasons,
                             age_context=context)  # fmt: skip
            hits = self.pipeline.judge(sub, [classified]).signals  # the classifier's policy, not the media policy's
            if hits:
                detection.signals = hits
                answer["case_id"] = self._open_case(sub, recipient, actor, scope)
        return answer

    def _classify(self, data: bytes, policy: MediaPolicy) -> Classification:
        """The policy classifier's result, with only the policy label's score (the one that means explicit). The
        image is checked before it is decoded (``media.*`` codes for what is not an image Safehold decodes
        safely)."""
        c = self._enabled(policy.classifier)
        if c is None or "image" not in c.takes:
            raise SafeholdError(
                "media.classifier_unavailable",
                f"The media policy's classifier {policy.classifier!r} is not enabled here: add it to "
                "SAFEHOLD_CLASSIFIERS, or name an enabled one in the media policy.",
                status=503,
                detail={"classifier": policy.classifier},
            )
        one = replace(self.classifiers, enabled=(c,))
        bounds = {"max_jpeg_scans": one.max_jpeg_scans, "max_jpeg_segments": one.max_jpeg_segments}
        prepare(data, max_pixels=one.max_pixels, **bounds)  # refuses what is no image with the scan's codes
        classified = one.classify_image(data)
        if not classified:
            raise SafeholdError(
                "media.not_classified",
                "The image could not be decoded or classified, so the policy cannot say it is safe to show.",
                status=422,
            )
        c_result = classified[0]
        score = next((s for s in c_result.scores if s.label == policy.label), None)
        if score is None:
            raise SafeholdError(
                "media.invalid_policy",
                f"Classifier {policy.classifier} gave no score for the policy's label {policy.label!r}.",
                status=422,
            )
        return replace(c_result, scores=(replace(score, score=float(score.score)),))

    def _open_case(self, sub: Submission, recipient: str | None, actor: str, scope: str) -> int | None:
        """Submit the event to the pipeline once per (message, sender, recipient, image), whichever stage saw it
        first; the case's id. The pipeline keeps the image in the vault with the case."""
        detection = sub.detection
        image = hashlib.sha256(sub.media).hexdigest()
        event = f"{detection.content_id}\0{detection.account_id}\0{recipient or ''}\0{image}"
        digest = hashlib.sha256(event.encode("utf-8", "surrogatepass")).hexdigest()

        def case_of(ref: CaseRef | None) -> dict:
            return {"case": ref.to_dict() if ref is not None else None}

        key = f"{scope}:media-check:{digest}"
        result = self.pipeline.submit(sub, key=key, digest=digest, actor=actor, answer=case_of)
        case = (result or {}).get("case")
        return case["id"] if case else None
