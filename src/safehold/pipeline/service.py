"""The pipeline: every door hands what detectors found about a subject to :meth:`Pipeline.submit`, which applies
bank and classifier policy, opens or updates the subject's case and queues the automatic actions, once.

The doors — ``POST /v1/scan`` and ``/v1/scan/batch``, ``POST /v1/events``, ``POST /v1/text/check``, conversations
and ``safehold scan --record`` — only parse their input, run their detectors and format the answer; what a
finding becomes is decided here, the same way for all of them (docs/cases.md):

- **bank policy**: a scan's matches on block banks whose ``on_match`` is ``case`` or ``auto`` become hash-match
  signals (an allow bank that vouched for the content leaves none); ``auto`` banks' matches also run the
  enabled ``auto`` policies (:meth:`safehold.actions.service.ActionService.for_detection`), except a match on a
  quarantined entry (docs/sharing.md, "False-positive controls"), which goes to review only;
- **classifier policy**: the enabled classifiers score the submitted image (one the scan hashed without error and
  no allow bank vouched for, decoded within the scan's bounds); a score at or above the threshold of its
  classifier's policy (:mod:`safehold.pipeline.classifier_policy`) is a hit. A hit on a label legal for adults
  (``explicit``) needs an age signal — the door's :attr:`Submission.age_reasons` or the uploader's band
  (``uploader_minor``) — to become a ``classifier`` signal in the policy's category (``csam``) for human review;
  without one it is only noted (or opens a case in its own label, if the policy says ``alone: case``). A hit on a
  child-abuse label is a signal alone. It runs no automatic action unless the operator set ``auto_action`` for
  the classifier (EU Regulation 2021/1232: a guess about new material needs a person);
- **the door's own signals** (platform signals, text detections, grooming alerts) go to the case as they are,
  when the door says they warrant one (:attr:`Submission.opens`);
- **operator rules** (:mod:`safehold.pipeline.rules`, docs/rules.md): the live CEL rules see all of the above
  and every classifier score; a matching ``open_case`` rule adds a ``rule`` signal (so a case opens) and raises
  the case to its priority, the other effects (label, queue, action, escalation) apply to the case the
  submission opens or updates. Shadow rules only record what they would have done;
- **once**: under an idempotency key the claim, the case, its items and signals, the automatic actions and the
  stored answer commit in one transaction; a retry with the same key and body answers the first call's answer
  again with ``duplicate: true``, with another body it is refused (409).

Media is kept (encrypted, in the vault) only when something is recorded about it.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safehold.actions.service import ActionService
from safehold.agebands import is_minor
from safehold.banks.index import BankIndex
from safehold.cases.detection import CaseRef, Detection, DetectionSignal, check, subject_key
from safehold.cases.service import CaseService, lock_writes
from safehold.cases.taxonomy import severity
from safehold.classifiers.base import Classification, Score
from safehold.classifiers.registry import Classifiers
from safehold.errors import Conflict, SafeholdError
from safehold.pipeline.ages import AgeLookup, NoAges
from safehold.pipeline.classifier_policy import (
    AGE_REASONS,
    CONTACT_REASONS,
    ClassifierPolicies,
    Judged,
    Policy,
    age_category,
)
from safehold.pipeline.rules import NoRules, RuleEffect, RuleHook
from safehold.pipeline.screening import ScreeningQueue
from safehold.review.service import escalate
from safehold.scanning.service import Match, ScanResult
from safehold.signals import registry
from safehold.signals.base import SignalType
from safehold.store.db import Database
from safehold.store.groupcommit import Batched, GroupCommit, Work
from safehold.store.models import Case, IngestedEvent
from safehold.store.seen import SeenHashes
from safehold.store.vault import MediaVault

#: The category of a block-bank match whose entry has none: banks hold known abuse material.
DEFAULT_MATCH_CATEGORY = "csam"
#: The 409 code of a key reused for another request, unless the door has its own.
CONFLICT = "event.idempotency_conflict"
#: What the door's answer is built from: the case the submission opened or updated (``None``: none).
Answer = Callable[[CaseRef | None], dict]


@dataclass(frozen=True)
class BankSignal:
    """A block-bank match as a hash-match signal; ``auto`` when its bank's ``on_match`` is ``auto`` (the automatic
    policies run for it when the detection is recorded)."""

    signal: DetectionSignal
    auto: bool


@dataclass
class Submission:
    """What a door's detectors found about one subject.

    ``detection`` names the subject and its item and carries the door's own signals. ``source`` is the source
    recorded (the detection's own is replaced); ``None`` takes that of the strongest signal (severity ×
    confidence). ``media`` is the file (named
    ``filename``), classified when it is an image and classifiers are enabled, and kept in the vault, named on
    the case's item, only if something is recorded.
    """

    detection: Detection
    scans: Sequence[ScanResult] = ()
    media: bytes | None = None
    filename: str | None = None
    source: str | None = None
    #: The door's own signals warrant a case (platform signals; a text score at or over its threshold).
    opens: bool = False
    #: Record even when nothing opens a case: the key is remembered and the subject's open case, if any, gets
    #: the detection's metadata and item (the event intake: an account's IP events join its case).
    always: bool = False
    #: The scans' hashes are a new sighting of the content, for the seen-hash store (re-matching hands back
    #: hashes already stored: False).
    sighting: bool = True
    #: Why a child is involved, as the door knows it (classifier_policy.AGE_REASONS: ``depicted_minor``,
    #: ``recipient_minor``, ``grooming_conversation``); the pipeline adds ``uploader_minor`` itself.
    age_reasons: list[str] = field(default_factory=list)
    #: What the door knows about those reasons, shown on the signal (``{"grooming_conversation": "conv-1"}``).
    age_context: dict = field(default_factory=dict)
    #: Actions the door takes itself, as ``(door, kind, params)``, when a block bank's match opens or updates the
    #: case (a live stream's ``interrupt``): in the same transaction as the case, once per door, kind and case.
    on_match: list[tuple[str, str, dict]] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.age_reasons) - set(AGE_REASONS))
        if unknown:  # a door's bug, not a caller's input: doors validate what their callers send
            raise ValueError(f"unknown age reasons {unknown}; see safehold.pipeline.classifier_policy.AGE_REASONS")


@dataclass(frozen=True)
class Ruled:
    """A submission after policy: the detection to record and the signals whose automatic policies run."""

    detection: Detection
    auto: list[DetectionSignal]
    #: The live rules' effects other than opening the case, applied to the case once recorded.
    effects: list[RuleEffect] = field(default_factory=list)
    #: What the shadow rules would have done, kept once the detection is recorded (after its idempotency claim).
    shadow: list[dict] = field(default_factory=list)
    #: The door's own actions (:attr:`Submission.on_match`), when a bank matched.
    door: list[tuple[str, str, dict]] = field(default_factory=list)

    @property
    def ruling(self) -> list[list]:
        """What policy found, for a door whose idempotency key is derived from its input: the bank entries
        matched and the classifier hits (with the age reasons they came with), sorted. The same content scanned
        again after a bank gained its hash (an ``auto`` bank, say) is then a new submission, whose signal and
        automatic actions happen, not a retry."""
        return sorted(
            [sig.bank or "", sig.entry_id or ""]
            if sig.source == "hash_match"
            else [sig.source, sig.signal_type or "", sig.category or "", *sig.detail.get("age", {}).get("reasons", ())]
            for sig in self.detection.signals
            if sig.source in ("hash_match", "classifier")
        )


@dataclass(frozen=True)
class _Pending:
    """One :meth:`Pipeline.commit_work` waiting for its batch: what it records under which key, and its work alone."""

    ruled: Ruled
    key: str
    digest: str
    actor: str
    answer: Answer
    conflict_code: str
    work: Work


def _records(ruled: Ruled) -> bool:
    """Whether recording ``ruled`` writes anything of its own: a signal, a rule's effect, a shadow rule's hit."""
    return bool(ruled.detection.signals or ruled.effects or ruled.shadow)


def _attaches(d: Detection) -> bool:
    """Whether a detection without signals is attached to its subject's open case (:meth:`CaseService.attach`)."""
    return bool(d.has_item or d.metadata)


class Pipeline:
    def __init__(
        self,
        db: Database,
        cases: CaseService,
        actions: ActionService,
        vault: MediaVault,
        classifiers: Classifiers,
        index: BankIndex,
        seen: SeenHashes | None = None,
        *,
        screening: ScreeningQueue | None = None,
        ages: AgeLookup | None = None,
        policies: ClassifierPolicies | None = None,
        writes: GroupCommit | None = None,
        rules: RuleHook | None = None,
    ):
        self.db = db
        self.writes = writes or GroupCommit(db)  # off unless given: one transaction per commit
        self.screening = screening  # the external classification services' queue (safehold.screening), if wired
        self.seen = seen  # the opt-in store of scanned hashes, for re-matching (safehold.sharing.rematch)
        self.index = index  # the banks' settings (on_match, thresholds) as the scan that matched saw them
        self.cases = cases
        self.actions = actions
        self.vault = vault
        self.classifiers = classifiers
        self.ages = ages or NoAges()  # the uploader's band, for a classifier hit that needs an age signal
        self.policies = policies or ClassifierPolicies(db, None, classifiers)
        self.rules = rules or NoRules()  # the operator's CEL rules (safehold.rules.book)
        self._pruned_at: dt.datetime | None = None

    # ---------------------------------------------------------------- the entry

    def submit(
        self,
        sub: Submission,
        *,
        key: str,
        digest: str,
        actor: str,
        answer: Answer,
        conflict_code: str = CONFLICT,
    ) -> dict | None:
        """Record ``sub`` once under the idempotency ``key`` (already scoped to the caller) and return
        ``answer(case)``, stored with the key; a retry returns the stored answer with ``duplicate: true``.

        Returns ``None`` when nothing is recorded (no policy opens a case and the submission is not ``always``):
        no key is remembered and no media kept, so a later call that does find something is not a duplicate.

        A door whose detectors are costly calls :meth:`replay` before running them; one that has already done
        its work (a scan) need not: a retry finds the key taken and gets the stored answer all the same, and a
        first call, the common case, pays no extra read.
        """
        ruled = self.rule(sub)
        return self.commit(ruled, key=key, digest=digest, actor=actor, answer=answer, conflict_code=conflict_code)

    def commit(
        self,
        ruled: Ruled | None,
        *,
        key: str,
        digest: str,
        actor: str,
        answer: Answer,
        conflict_code: str = CONFLICT,
    ) -> dict | None:
        """The second half of :meth:`submit`, for a door whose key depends on what was ruled
        (:attr:`Ruled.ruling`): record ``ruled`` once under ``key``; ``None`` when there is nothing to record."""
        if ruled is None:
            return None
        return self.writes.run(
            *self.commit_work(ruled, key=key, digest=digest, actor=actor, answer=answer, conflict_code=conflict_code)
        )

    def commit_work(
        self, ruled: Ruled, *, key: str, digest: str, actor: str, answer: Answer, conflict_code: str = CONFLICT
    ) -> tuple[str, Work]:
        """:meth:`commit` as the group-commit key and work (safehold.store.groupcommit), for a caller that waits
        for it itself (the ASGI hot path, without a thread)."""

        def work(s: Session) -> dict | Conflict:
            insert = pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
            claim = (  # built here, not per request: a batch claims its events together (_commit_many)
                insert(IngestedEvent)
                .values(key=key, body_sha256=digest, result={})
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(IngestedEvent.key)
            )
            if s.execute(claim).scalar() is None:  # the key is taken (earlier, or earlier in this batch)
                return self._replayed(s, key, digest, conflict_code)
            result = answer(self._record(s, ruled, actor))
            s.get(IngestedEvent, key).result = result
            return result

        # Grouped by subject: one subject's events run in order, on one writer (safehold.store.groupcommit); a
        # batch's events are claimed together (_commit_many), with this work as the fallback.
        d = ruled.detection
        pending = _Pending(ruled, key, digest, actor, answer, conflict_code, work)
        return f"subject:{d.content_id or ''}:{d.account_id or ''}", Batched(self._commit_many, pending, work)

    def _commit_many(self, s: Session, batch: list[_Pending]) -> list[dict | Conflict]:
        """:meth:`commit_work` for a batch's events together (safehold.store.groupcommit.Batched).

        Most events record nothing: no signal of their own, no rule that acted or would have (shadow), and no open
        case of their subject to attach to (an upload that matched nothing). Their answer is known before any
        write, so they are claimed — key, digest and answer — in one ``INSERT … ON CONFLICT DO NOTHING RETURNING``
        for the whole batch, after one read of which of the batch's subjects have a case. A key already taken is
        answered from its record, as alone.
        The others (a signal, a subject with a case or touched by such an event in the batch) are claimed in one
        statement too, then recorded one by one in arrival order (the case path), their answers written in one
        executemany; a key sent twice in the batch runs its own work, in order, as alone."""
        lock_writes(s)
        subjects = [subject_key(p.ruled.detection) if _attaches(p.ruled.detection) else None for p in batch]
        wanted = {k for k in subjects if k is not None}
        held = set(s.scalars(select(Case.open_key).where(Case.open_key.in_(wanted)))) if wanted else set()
        counts = collections.Counter(p.key for p in batch)
        loud = {i for i, p in enumerate(batch) if _records(p.ruled) or counts[p.key] > 1 or subjects[i] in held}
        touched = {subjects[i] for i in loud} - {None}  # a case may open or change there earlier in the batch
        loud |= {i for i in range(len(batch)) if subjects[i] in touched}
        results: list[dict | Conflict | None] = [None] * len(batch)
        insert = pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        table = IngestedEvent.__table__
        claim = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
        now = dt.datetime.now(dt.UTC)

        def claimed(indexes: list[int], answers: dict[int, dict]) -> set[str]:
            rows = [
                {"key": batch[i].key, "body_sha256": batch[i].digest, "result": answers.get(i, {}), "received_at": now}
                for i in indexes
            ]
            return set(s.scalars(claim, rows)) if rows else set()

        quiet = [i for i in range(len(batch)) if i not in loud]
        for i in quiet:
            check(batch[i].ruled.detection)  # what attach checks first
        answers = {i: batch[i].answer(None) for i in quiet}
        taken = claimed(quiet, answers)
        for i in quiet:
            p = batch[i]
            results[i] = answers[i] if p.key in taken else self._replayed(s, p.key, p.digest, p.conflict_code)
        # The others in arrival order: a key sent once is claimed with the batch's (one statement) and its answer
        # written with theirs (one executemany); a key sent twice runs its own work, which sees the first's claim.
        once = [i for i in sorted(loud) if counts[batch[i].key] == 1]
        taken = claimed(once, {})
        recorded = []
        for i in sorted(loud):
            p = batch[i]
            if counts[p.key] > 1:
                results[i] = p.work(s)
            elif p.key not in taken:
                results[i] = self._replayed(s, p.key, p.digest, p.conflict_code)
            else:
                results[i] = p.answer(self._record(s, p.ruled, p.actor))
                recorded.append({"claimed_key": p.key, "answer": results[i]})
        if recorded:
            s.execute(
                update(table).where(table.c.key == bindparam("claimed_key")).values(result=bindparam("answer")),
                recorded,
            )
        return results

    def record(self, s: Session, sub: Submission, actor: str) -> CaseRef | None:
        """Record ``sub`` in the caller's transaction, for a door whose own rows say what was already recorded
        (a conversation's message ids); ``None`` when nothing is recorded."""
        ruled = self.rule(sub)
        return self._record(s, ruled, actor) if ruled is not None else None

    def replay(self, key: str, digest: str, *, conflict_code: str = CONFLICT) -> dict | None:
        """The stored answer to an earlier call with this (scoped) key, or ``None`` if there was none; a different
        ``digest`` under the key is refused with ``conflict_code`` (409). Doors call it before costly work."""
        with self.db.session() as s:
            found = self._replayed(s, key, digest, conflict_code)
        if isinstance(found, Conflict):
            raise found
        return found

    @staticmethod
    def _replayed(s: Session, key: str, digest: str, conflict_code: str) -> dict | Conflict | None:
        """:meth:`replay` in ``s``, the conflict returned rather than raised (a batch's other work commits)."""
        row = s.get(IngestedEvent, key)
        if row is None:
            return None
        if row.body_sha256 != digest:
            return Conflict(
                conflict_code, "This idempotency key was used for a different request; use a new key for a new one."
            )
        return {**row.result, "duplicate": True}

    def prune(self, keep: dt.timedelta, now: dt.datetime | None = None) -> int:
        """Forget idempotency records older than ``keep`` (a platform retries within minutes or hours, not
        weeks), at most once an hour; returns how many were deleted. The cases they opened are untouched."""
        now = now or dt.datetime.now(dt.UTC)
        if self._pruned_at is not None and now - self._pruned_at < dt.timedelta(hours=1):
            return 0
        with self.db.session() as s:
            n = s.execute(delete(IngestedEvent).where(IngestedEvent.received_at < now - keep)).rowcount
        self._pruned_at = now
        return n

    # ---------------------------------------------------------------- policy

    def bank_signals(self, scan: ScanResult) -> list[BankSignal]:
        """The scan's matches on block banks that open cases, as hash-match signals."""
        if scan.verdict != "match":
            return []  # no match, or an allow bank vouched for it
        banks = {b.name: b for b in self.index.banks.values() if b.kind == "block" and b.on_match != "none"}
        own = {sig["type"]: sig["value"] for sig in scan.signals}
        out = []
        for m in scan.matches:
            bank = banks.get(m.bank)
            if bank is None:
                continue
            # A quarantined entry (matching far more than its peers: safehold.sharing.quarantine) still opens a case
            # for review, saying why on the signal, but runs no automatic action: ``auto`` acts like ``case``.
            quarantine = m.entry.get("quarantine")
            frame = (m.detail or {}) if m.variant == "frame" else {}  # a video's frame matched an image bank
            detail = {
                "variant": m.variant,
                "external_id": m.entry.get("external_id"),
                "list": m.entry.get("source"),
                "quarantine": quarantine,
                "timestamp": frame.get("timestamp"),
                "frame": frame.get("frame"),
            }
            signal = DetectionSignal(
                source="hash_match",
                signal_type=m.signal_type,
                value=frame.get("frame_pdq") or own.get(m.signal_type, m.entry.get("value")),
                bank=m.bank,
                entry_id=m.entry.get("id"),
                category=m.entry.get("category") or DEFAULT_MATCH_CATEGORY,
                confidence=match_confidence(m, bank.threshold(m.signal_type)),
                distance=m.distance,
                detail={k: v for k, v in detail.items() if v is not None},
            )
            out.append(BankSignal(signal, bank.on_match == "auto" and quarantine is None))
        return out

    def rule(self, sub: Submission) -> Ruled | None:
        """Apply bank and classifier policy; ``None`` when nothing is to be recorded. The scans' hashes of a
        content item are remembered first, when the seen-hash store is on: whatever policy decides now, a bank
        entry that arrives later is matched against them."""
        if self.seen is not None and sub.sighting and sub.detection.content_id and sub.scans:
            hashes = [(sig["type"], sig["value"]) for scan in sub.scans for sig in scan.signals]
            self.seen.record(sub.detection.content_id, sub.detection.account_id, hashes)
        found, frames = self._found(sub.scans)
        if self.screening is not None and sub.sighting and _screenable(sub):
            hashes = {sig["type"]: sig["value"] for scan in sub.scans for sig in scan.signals}
            self.screening.offer(
                sub.media, filename=sub.filename, content_id=sub.detection.content_id,
                account_id=sub.detection.account_id, hashes=hashes, age_reasons=sub.age_reasons,
                age_context=sub.age_context,
            )  # fmt: skip
        classified = self.classifiers.classify_media(sub.media) if _classifiable(sub) else []
        judged = self.judge(sub, classified)
        hits = judged.signals
        outcome = self.rules.evaluate(sub, [b.signal for b in found], classified)
        effects = outcome.effects
        opening = [rule_signal(e) for e in effects if e.effect["type"] == "open_case"]
        own = sub.detection.signals if sub.opens or found or hits or opening else []
        signals = [b.signal for b in found] + hits + own + opening
        if not signals and not sub.always:
            # Nothing is recorded, so no idempotency key is claimed: a shadow rule that would have opened a case
            # here (what the comparison page is for) is kept now; a retry of such a detection is counted again.
            self.rules.record_shadow(None, outcome.shadow)
            return None
        d = replace(
            sub.detection,
            signals=signals,
            source=sub.source or _strongest_source(signals),
            known_match=bool(sub.detection.known_match or found),
        )
        if judged.noted:
            d.item_metadata = {**d.item_metadata, "classifier_scores": judged.noted}
        if sub.media is not None and signals:
            d.media, d.filename = self.vault.put(sub.media), sub.filename
            d.media_type = d.media_type or next((scan.media for scan in sub.scans if scan.media in _MEDIA), None)
        if frames and signals:
            d.item_metadata = {**d.item_metadata, "frames": self._keep_frames(found, frames)}
        door = list(sub.on_match) if found else []
        return Ruled(d, [b.signal for b in found if b.auto] + judged.auto, effects, outcome.shadow, door)

    def _found(self, scans: Sequence[ScanResult]) -> tuple[list[BankSignal], list[bytes]]:
        """The scans' bank signals, and the video frames their frame matches name (numbered across the scans,
        in their signals' ``detail.frame``)."""
        found: list[BankSignal] = []
        frames: list[bytes] = []
        for scan in scans:
            for b in self.bank_signals(scan):
                n = b.signal.detail.get("frame")
                if n is not None:
                    b.signal.detail["frame"] = n + len(frames)
                found.append(b)
            frames.extend(scan.frames)
        return found, frames

    def _keep_frames(self, found: list[BankSignal], frames: list[bytes]) -> list[dict]:
        """Keep the matched frames that a recorded signal names in the vault (encrypted, like any kept media) and
        describe them for the case's item: when each is shown, its digest and what it matched. A frame no signal
        names (its bank opens no case) is not kept."""
        by_frame: dict[int, list[dict]] = {}
        for b in found:
            n = b.signal.detail.get("frame")
            if n is not None and 0 <= n < len(frames):
                by_frame.setdefault(n, []).append(
                    {"bank": b.signal.bank, "entry_id": b.signal.entry_id, "distance": b.signal.distance,
                     "timestamp": b.signal.detail.get("timestamp")}
                )  # fmt: skip
        kept = []
        for n in sorted(by_frame):
            stored = self.vault.put(frames[n])
            hits = by_frame[n]
            kept.append({"timestamp": hits[0]["timestamp"], "sha256": stored.sha256, "size": stored.size,
                         "matches": [{k: v for k, v in h.items() if k != "timestamp"} for h in hits]})  # fmt: skip
            for b in found:
                if b.signal.detail.get("frame") == n:
                    b.signal.detail["frame"] = len(kept) - 1  # the frame's place in the item's ``frames``
        return kept

    def judge(
        self,
        sub: Submission,
        classified: Sequence[Classification],
        policy_for: Callable[[Classification, Score], Policy | None] | None = None,
    ) -> Judged:
        """Apply each classifier's policy (:mod:`safehold.pipeline.classifier_policy`) to its scores: which hits
        become signals, which of those run the automatic policies, which are only noted. The uploader's band is
        read only when there is a hit.

        ``policy_for`` gives the policy of one score (``None``: not judged) in place of the local classifiers'
        policies by name: how the screening services, whose policy is per label, are judged by this same rule."""
        if not classified:
            return Judged([], [], [])
        if policy_for is None:
            policies = self.policies.for_hits()

            def policy_for(c: Classification, score: Score) -> Policy | None:
                return policies.get(c.classifier)

        scored = [(c, policy_for(c, score), score) for c in classified for score in c.scores]
        hits = [(c, policy, score) for c, policy, score in scored if policy and score.score >= policy.threshold]
        if not hits:
            return Judged([], [], [])
        reasons = list(dict.fromkeys(sub.age_reasons))
        band = self.ages.band(sub.detection.account_id) if sub.detection.account_id else "unknown"
        if is_minor(band):
            reasons.insert(0, "uploader_minor")
        signals, auto, noted = [], [], []
        for c, policy, score in hits:
            if policy.needs_age_signal and not reasons and policy.alone == "ignore":
                noted.append(
                    {
                        "classifier": c.classifier,
                        "label": score.label,
                        "score": score.score,
                        "threshold": policy.threshold,
                    }
                )
                continue
            sig = review_signal(c, score, policy, reasons, band, sub.age_context)
            signals.append(sig)
            if policy.auto_action:
                auto.append(sig)
        return Judged(signals, auto, noted)

    def _record(self, s: Session, ruled: Ruled, actor: str) -> CaseRef | None:
        """Record the detection (or just attach it, without signals) in ``s``; then the automatic policies for
        matches on ``auto`` banks and hits of classifiers whose policy sets ``auto_action``, in the same
        transaction. The shadow rules' hits are kept when ``s`` commits: a retry that finds the key claimed never
        gets here, and a batch rolled back and run again keeps them once."""
        d = ruled.detection
        if not d.signals:
            ref = self.cases.attach(d, actor, s) if d.has_item or d.metadata else None
            self.rules.record_shadow(s, ruled.shadow, ref.id if ref is not None else None)
            return ref
        ref = self.cases.record(d, actor, s)
        self.rules.record_shadow(s, ruled.shadow, ref.id)
        if ruled.auto:
            self.actions.for_detection(s, s.get(Case, ref.id), ruled.auto, actor)
        if ruled.effects:
            case = s.get(Case, ref.id)
            self._apply(s, case, ruled.effects, actor)
            # The answer tells the platform the case as the rules left it (an open_case rule raised its band).
            ref = replace(ref, status=case.status, band=case.band, priority=case.priority)
        for door, kind, params in ruled.door:
            self.actions.for_door(s, s.get(Case, ref.id), door, kind, params, actor)
        return ref

    def _apply(self, s: Session, case: Case, effects: list[RuleEffect], actor: str) -> None:
        """The live rules' effects on the case the detection opened or updated, in the same transaction."""
        for e in effects:
            kind = e.effect["type"]
            if kind == "open_case":
                self.cases.raise_band(s, case, e.effect["priority"])
            elif kind == "add_label":
                labels = list(case.metadata_.get("labels", []))
                if e.effect["label"] not in labels:
                    case.metadata_ = {**case.metadata_, "labels": [*labels, e.effect["label"]]}
            elif kind == "route_to_queue":
                case.queue = e.effect["queue"]
            elif kind == "escalate_to_reporting" and case.status == "open":
                escalate(case, self.cases.sla_in(s), dt.datetime.now(dt.UTC))
            elif kind == "action":
                self.actions.for_rule(s, case, e.rule, e.effect["name"], actor)


_MEDIA = ("image", "video")


def _classifiable(sub: Submission) -> bool:
    """Whether the classifiers look at the submission's media: an image, or a video (its sampled frames), that
    the scan hashed without error (a file the hashers refused, too large or too complex, is not decoded again to
    be classified) and that no allow bank vouched for (a known false positive is not a guess to review)."""
    return sub.media is not None and any(
        scan.media in _MEDIA and scan.error is None and scan.verdict != "allowlisted" for scan in sub.scans
    )


def _screenable(sub: Submission) -> bool:
    """Whether the external screening services get the submission's image: one the classifiers would look at
    (:func:`_classifiable`) that no bank matched (known material needs no guess)."""
    return _classifiable(sub) and not any(scan.verdict == "match" for scan in sub.scans)


def review_signal(
    c: Classification, hit: Score, policy: Policy, reasons: list[str], band: str, context: dict
) -> DetectionSignal:
    """A classifier hit as a ``classifier`` signal for human review. The score is its confidence; the detail names
    the classifier, its version, its label, the threshold in force and all its scores (the reasons a reviewer
    reads), and the age signal it came with (``age``: the reasons, the uploader's band and the door's context).

    With an age signal, a hit of a classifier that needs one takes the policy's category (``csam``: explicit
    imagery of a suspected minor is apparent CSAM not yet classified), or ``grooming`` when the only reason is
    ``recipient_minor`` (classifier_policy.age_category); otherwise its own label. A reason that puts
    a child in contact with the sender now (classifier_policy.CONTACT_REASONS) sets ``minor_at_risk``, so a high
    hit is P0."""
    detail = {
        "classifier": c.classifier,
        "version": c.version,
        "label": hit.label,
        "threshold": policy.threshold,
        "scores": {s.label: s.score for s in c.scores},
    }
    if hit.detail:
        detail["reasons"] = hit.detail
    category = hit.label
    if reasons:
        detail["age"] = {"reasons": reasons, "uploader_band": band, **context}
        contact = [r for r in reasons if r in CONTACT_REASONS]
        if contact:
            detail["minor_at_risk"] = {"reasons": ", ".join(contact)}
        if policy.needs_age_signal:
            category = age_category(policy, reasons)
    if policy.auto_action:
        detail["auto_action"] = True
    return DetectionSignal(
        source="classifier", signal_type=c.classifier, category=category, confidence=hit.score, detail=detail
    )


def rule_signal(e: RuleEffect) -> DetectionSignal:
    """A live ``open_case`` rule's match as a signal: what opens the case, and names the rule and version that
    did (the reviewer reads why the case exists)."""
    return DetectionSignal(
        source="event",
        signal_type="rule",
        category=e.effect.get("category", "rule"),
        confidence=1.0,
        detail={"rule": e.rule, "version": e.version, "priority": e.effect["priority"]},
    )


def _strongest_source(signals: list[DetectionSignal]) -> str:
    """The source of the strongest signal (``event`` without signals)."""
    strongest = max(signals, key=lambda sig: severity(sig.category) * sig.confidence, default=None)
    return strongest.source if strongest else "event"


def match_confidence(m: Match, threshold: int) -> float:
    """How sure a match is, by its signal type's rule (:meth:`~safehold.signals.base.SignalType.confidence`):
    1.0 for exact matches, ``1 - distance / (2 × bank threshold)`` for PDQ, the matched share of the uploaded
    video's frames for vPDQ; never below 0.5 (within the bank's threshold it is a match). A type no longer
    installed gets the generic distance rule."""
    try:
        st = registry.signal_type(m.signal_type)
    except SafeholdError:
        st = SignalType
    return st.confidence(m.distance, threshold, m.detail)
